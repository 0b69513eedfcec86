// Command capacity measures how runledger's hot paths hold up as finished
// work piles up: it loads finished item executions (with their history and
// status counts) set-based into a private PostgreSQL server, and at each
// size reports claim latency, Progress latency, a burn-down's throughput,
// index sizes and VACUUM time.
//
//	cd bench && nice -n 19 go run ./capacity                    # 0, 1M and 10M: about half an hour
//	cd bench && go run ./capacity -sizes 0,100000 -burn 10000   # a quick look
//
// The server is private (internal/pgserver: initdb in a temporary directory,
// removed at the end) and tuned for loading, not durability: fsync,
// full_page_writes and synchronous_commit are off and autovacuum is off (each
// size is VACUUM ANALYZEd after loading, untimed). The loading connection
// runs with session_replication_role = replica, so neither runledger's
// triggers nor the foreign-key checks run on it: it writes the history rows
// and status counts itself, as the triggers would have. Every other
// connection (the API's) runs with the triggers, as in production.
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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	sizes     []int
	chunk     int
	claimable int
	burn      int
	workers   int
	batch     int
	calls     int
	churn     int
	settings  map[string]string
	markdown  bool
	attach    string
	probe     bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "", log.Ltime)
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		logger.Printf("capacity: %v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	var sizes, settings string
	fs.StringVar(&sizes, "sizes", "0,1000000,10000000", "comma-separated numbers of finished item executions to load before each measurement (ascending; loads are cumulative)")
	fs.IntVar(&cfg.chunk, "chunk", 100_000, "item executions per loaded run (and per loading transaction); the sizes must be multiples of it")
	fs.IntVar(&cfg.claimable, "claimable", 10_000, "claimable items in the live run that claim latency runs against")
	fs.IntVar(&cfg.burn, "burn", 100_000, "items of the burn-down at each size (0: skip)")
	fs.IntVar(&cfg.workers, "workers", 8, "burn-down workers")
	fs.IntVar(&cfg.batch, "batch", 100, "items per Claim (claim latency, burn-down, churn) and per Complete")
	fs.IntVar(&cfg.calls, "calls", 100, "timed calls per latency figure")
	fs.IntVar(&cfg.churn, "churn", 4000, "items claimed and failed back before the timed VACUUM")
	fs.StringVar(&settings, "set", "", "extra postgresql.conf settings, e.g. shared_buffers=1GB,work_mem=64MB")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the table as Markdown")
	fs.StringVar(&cfg.attach, "attach", "", "measure once, as loaded, the database of an earlier run at this URL (its server stopped loading) instead of starting a server")
	fs.BoolVar(&cfg.probe, "probe", false, "with -attach: only measure the server CPU of -calls claims of -batch items (the server must run on this machine; pause the program that loaded it)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.probe && cfg.attach == "" {
		return nil, errors.New("-probe needs -attach")
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.chunk < 10 || cfg.chunk%10 != 0 || cfg.claimable < 10 || cfg.claimable%10 != 0 || cfg.burn < 0 || cfg.burn%10 != 0 {
		return nil, errors.New("-chunk, -claimable and -burn must be multiples of 10 (ten batches each)")
	}
	if cfg.workers < 1 || cfg.batch < 1 || cfg.calls < 1 || cfg.churn < 0 {
		return nil, errors.New("-workers, -batch and -calls must be positive")
	}
	prev := -1
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n%cfg.chunk != 0 || n <= prev {
			return nil, fmt.Errorf("-sizes: %q must be ascending multiples of -chunk (%d)", s, cfg.chunk)
		}
		cfg.sizes = append(cfg.sizes, n)
		prev = n
	}
	cfg.settings = map[string]string{
		"fsync":                "off",
		"full_page_writes":     "off",
		"synchronous_commit":   "off",
		"autovacuum":           "off",
		"shared_buffers":       "1GB",
		"maintenance_work_mem": "256MB",
		"max_wal_size":         "8GB",
		"checkpoint_timeout":   "30min",
		"max_connections":      "50",
	}
	for _, kv := range strings.Split(settings, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("-set: %q is not name=value", kv)
		}
		cfg.settings[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return cfg, nil
}

func run(ctx context.Context, cfg *config, out io.Writer, logger *log.Logger) error {
	started := time.Now()
	header := fmt.Sprintf("command: %s\ndate: %s; %s; %d CPUs; load average at start %s",
		strings.TrimSpace("go run ./capacity "+strings.Join(os.Args[1:], " ")), started.UTC().Format("2006-01-02 15:04 MST"),
		runtime.Version(), runtime.NumCPU(), loadAverage())
	logger.Print(strings.ReplaceAll(header, "\n", "; "))
	if cfg.probe {
		return probeRun(ctx, cfg, header, out, logger)
	}
	if cfg.attach != "" {
		return attachRun(ctx, cfg, header, out, logger)
	}
	e, err := newEnv(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer e.close()
	header += "; " + e.version + "; server settings " + settingsLine(cfg.settings)
	var stages []*stage
	defer func() {
		if len(stages) > 0 {
			printTable(out, header+fmt.Sprintf("\ntotal duration %s; load average at end %s", time.Since(started).Round(time.Second), loadAverage()), stages, cfg.markdown)
		}
	}()
	loaded := 0
	for _, size := range cfg.sizes {
		st := &stage{target: size}
		t0 := time.Now()
		for loaded < size {
			if err := e.loadRun(ctx); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			loaded += cfg.chunk
			if loaded%(10*cfg.chunk) == 0 || loaded == size {
				logger.Printf("   loaded %s of %s finished item executions (%s)", count(loaded), count(size), time.Since(t0).Round(time.Second))
			}
		}
		st.load = time.Since(t0)
		if err := e.measure(ctx, st); err != nil {
			stages = append(stages, st)
			return fmt.Errorf("at %s: %w", count(size), err)
		}
		stages = append(stages, st)
	}
	return nil
}

func settingsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
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

// count renders n as 0, 10k, 1M, 2.5M.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%100 == 0:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.Itoa(n)
	}
}
