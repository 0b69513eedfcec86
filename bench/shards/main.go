// Command shards simulates the sharded deployment of docs/scaling.md,
// section 4, on one machine: N independent primaries (private PostgreSQL
// servers from internal/pgserver, each migrated), automations routed to
// them by a stable hash of their name, and one Runner per primary, all made
// from the same Workers and RunnerOptions. It burns down every automation's
// run (the first attempt of every -fail-every-th item fails and is retried),
// then checks that each item was handled once per attempt, by the primary
// its automation routes to, and that each primary's guards, history and
// status counts hold. It reports the burn-down's time, items/s and CPU per
// item for each primary and in total.
//
//	cd bench && nice -n 10 go run ./shards -markdown
//	cd bench && go run ./shards -clusters 2 -automations 4 -items 500   # a quick look
//
// On a machine with few cores the primaries share the same CPUs, so the
// total cannot show that throughput scales with the number of primaries:
// what the run shows is that routing and isolation hold.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	clusters    int
	automations int
	items       int
	concurrency int
	failEvery   int
	poll        time.Duration
	timeout     time.Duration
	markdown    bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "shards:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "", log.Ltime)
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		logger.Printf("shards: %v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("shards", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	fs.IntVar(&cfg.clusters, "clusters", 3, "private primaries (one PostgreSQL server each)")
	fs.IntVar(&cfg.automations, "automations", 12, "automations, routed to the primaries by a hash of their name")
	fs.IntVar(&cfg.items, "items", 5000, "items per automation (one batch, one run)")
	fs.IntVar(&cfg.concurrency, "concurrency", 20, "handler Concurrency per automation")
	fs.IntVar(&cfg.failEvery, "fail-every", 10, "the first attempt of every n-th item fails and is retried (0: none)")
	fs.DurationVar(&cfg.poll, "poll", 0, "the runners' PollInterval (0: the Runner's default, 5s)")
	fs.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "give up on the burn-down after this long")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the table as Markdown")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.clusters < 1 || cfg.automations < 1 || cfg.items < 1 || cfg.concurrency < 1 || cfg.failEvery < 0 || cfg.poll < 0 || cfg.timeout <= 0 {
		return nil, errors.New("-clusters, -automations, -items, -concurrency and -timeout must be positive, -fail-every not negative")
	}
	return cfg, nil
}

func run(ctx context.Context, cfg *config, out io.Writer, logger *log.Logger) error {
	started := time.Now()
	header := fmt.Sprintf("command: %s\ndate: %s; %s; %d CPUs; load average at start %s",
		strings.TrimSpace("go run ./shards "+strings.Join(os.Args[1:], " ")), started.UTC().Format("2006-01-02 15:04 MST"),
		runtime.Version(), runtime.NumCPU(), loadAverage())
	logger.Print(strings.ReplaceAll(header, "\n", "; "))
	s, err := newSim(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := s.burnDown(ctx)
	if err != nil {
		return fmt.Errorf("burn-down: %w", err)
	}
	if err := s.check(ctx, res); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	logger.Print("   checks passed: every item handled once per attempt, on the primary of its automation; guards, history and counts hold on every primary")
	printTable(out, header+fmt.Sprintf("; %s; server settings %s\ntotal duration %s; load average at end %s",
		s.version, settingsLine(), time.Since(started).Round(time.Second), loadAverage()), s, res, cfg.markdown)
	return nil
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
