// Command bench measures runledger against hand-written SQL, raw COPY and
// River on a local PostgreSQL server, in one run, and prints a table of
// medians with their spread and the targets. See README.md.
//
//	go run . -quick              # about a minute
//	go run .                     # the full sizes, about ten minutes
//	go run . -workloads burndown -repeat 5
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
	"slices"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	server       string
	quick        bool
	repeat       int
	workloads    []string
	batch        int
	sweep        []int
	workers      []int
	riverWorkers int
	ingestN      int
	startN       int
	burnN        int
	auditN       int
	smallN       int
	largeN       int
	graphN       int
	memN         int
	scopedN      int
	latencyCalls int
	schema       bool
	markdown     bool
	keep         bool
}

// allWorkloads in the order they run.
var allWorkloads = []string{"ingest", "start", "burndown", "progress", "claim", "graph", "memory", "runner", "wakeup", "scoped"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		if err := ingestChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "", log.Ltime)
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		logger.Printf("bench: %v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	var workloads, workers, sweep string
	fs.StringVar(&cfg.server, "server", "postgres://root@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server URL; scratch databases are created on it and dropped at the end")
	fs.BoolVar(&cfg.quick, "quick", false, "small sizes (a run of about a minute); explicit size flags still win")
	fs.IntVar(&cfg.repeat, "repeat", 3, "measured repetitions of each figure (after one discarded warm-up); the table shows their median and min-max")
	fs.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "comma-separated workloads to run: "+strings.Join(allWorkloads, ", "))
	fs.IntVar(&cfg.batch, "batch", 1000, "items per Claim and per Complete: the default, whose burn-down rows carry the targets, and the claim latency's")
	fs.StringVar(&sweep, "sweep", "100,1000", "comma-separated batch sizes of the runledger and raw burn-downs (-batch is always among them)")
	fs.StringVar(&workers, "workers", "8,16", "comma-separated worker counts for the burn-down")
	fs.IntVar(&cfg.riverWorkers, "river-workers", 1000, "River's MaxWorkers in the burn-down")
	fs.IntVar(&cfg.ingestN, "ingest", 0, "items per ingest (default 100000, quick 10000)")
	fs.IntVar(&cfg.startN, "start", 0, "items of the run start (default 100000, quick 10000)")
	fs.IntVar(&cfg.burnN, "burn", 0, "items per burn-down (default 100000, quick 10000)")
	fs.IntVar(&cfg.auditN, "audit", 0, "jobs per River + audit row burn-down, a slow baseline (default 20000, quick 5000; at most -burn)")
	fs.IntVar(&cfg.smallN, "small", 0, "items of the small run for progress and claim latency (default 10000, quick 1000)")
	fs.IntVar(&cfg.largeN, "large", 0, "items of the large run for progress and claim latency (default 1000000, quick 50000)")
	fs.IntVar(&cfg.graphN, "graph", 0, "items per run of the graph query's automation (default 10000, quick 1000)")
	fs.IntVar(&cfg.memN, "mem", 0, "items of the peak-memory ingest (default 1000000, quick 100000)")
	fs.IntVar(&cfg.scopedN, "scoped-backlog", 0, "claimable items of automation B in the scoped claim latency (default 1000000, quick 50000)")
	fs.IntVar(&cfg.latencyCalls, "calls", 20, "calls timed per repetition of a latency figure (each repetition's figure is their median)")
	fs.BoolVar(&cfg.schema, "schema", true, "give the automation an item_schema, so AddItems validates every payload")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the table as Markdown")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the scratch databases (their names are logged)")
	err := fs.Parse(args)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	size := func(p *int, full, quick int) {
		if *p == 0 {
			*p = full
			if cfg.quick {
				*p = quick
			}
		}
	}
	size(&cfg.ingestN, 100_000, 10_000)
	size(&cfg.startN, 100_000, 10_000)
	size(&cfg.burnN, 100_000, 10_000)
	size(&cfg.auditN, 20_000, 5_000)
	cfg.auditN = min(cfg.auditN, cfg.burnN)
	size(&cfg.smallN, 10_000, 1_000)
	size(&cfg.largeN, 1_000_000, 50_000)
	size(&cfg.graphN, 10_000, 1_000)
	size(&cfg.memN, 1_000_000, 100_000)
	size(&cfg.scopedN, 1_000_000, 50_000)
	if cfg.repeat < 1 || cfg.batch < 1 || cfg.latencyCalls < 1 || cfg.riverWorkers < 1 {
		return nil, errors.New("-repeat, -batch, -calls and -river-workers must be positive")
	}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !contains(allWorkloads, w) {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", w, strings.Join(allWorkloads, ", "))
		}
		cfg.workloads = append(cfg.workloads, w)
	}
	if cfg.workers, err = positives("-workers", workers); err != nil {
		return nil, err
	}
	if cfg.sweep, err = positives("-sweep", sweep); err != nil {
		return nil, err
	}
	if !slices.Contains(cfg.sweep, cfg.batch) {
		cfg.sweep = append(cfg.sweep, cfg.batch)
	}
	return cfg, nil
}

// positives parses a comma-separated list of positive numbers.
func positives(flagName, list string) ([]int, error) {
	var out []int
	for _, w := range strings.Split(list, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(w), &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive number", flagName, w)
		}
		out = append(out, n)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// bench is one run: its configuration, scratch databases and results.
type bench struct {
	cfg     *config
	log     *log.Logger
	scratch *scratch
	rows    []row
	scale   map[int]*scaleRun // progress and claim share their runs, by size
	// measuring is true during the measured rounds (not the warm-up).
	measuring bool
	cpu       map[string]*cpuFigures // burn-down CPU per item, by side
}

func run(ctx context.Context, cfg *config, out io.Writer, logger *log.Logger) (err error) {
	sc, err := newScratch(ctx, cfg.server, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			logger.Printf("keeping scratch databases: %s", strings.Join(sc.names, ", "))
			sc.close()
			return
		}
		// A fresh context: the run's may be cancelled by an interrupt.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, sc.dropAll(dctx))
	}()
	b := &bench{cfg: cfg, log: logger, scratch: sc, scale: map[int]*scaleRun{}, cpu: map[string]*cpuFigures{}}
	header := fmt.Sprintf("command: %s\ndate: %s; %s; %d CPUs; %s; load average at start %s\neach figure: median of %d runs after 1 warm-up, (min–max)",
		strings.TrimSpace("go run . "+strings.Join(os.Args[1:], " ")), time.Now().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.NumCPU(), sc.version, loadAverage(), cfg.repeat)
	logger.Print(strings.ReplaceAll(header, "\n", "; "))
	started := time.Now()
	steps := map[string]func(context.Context) error{
		"ingest":   b.ingest,
		"start":    b.start,
		"burndown": b.burndown,
		"progress": b.progress,
		"claim":    b.claim,
		"graph":    b.graph,
		"memory":   b.memory,
		"runner":   b.runnerBurndown,
		"wakeup":   b.wakeup,
		"scoped":   b.scoped,
	}
	for _, w := range allWorkloads {
		if !contains(cfg.workloads, w) {
			continue
		}
		logger.Printf("== %s", w)
		if err := steps[w](ctx); err != nil {
			b.closeScale()
			printTable(out, header, b.rows, cfg.markdown)
			return fmt.Errorf("%s: %w", w, err)
		}
	}
	b.closeScale()
	logger.Printf("done in %s; load average %s", time.Since(started).Round(time.Second), loadAverage())
	printTable(out, header, b.rows, cfg.markdown)
	return nil
}

// variant is one side of a comparison: fn does its own untimed setup and
// returns one measured value.
type variant struct {
	name string
	fn   func(ctx context.Context) (float64, error)
}

// compare runs every variant once to warm up, then cfg.repeat rounds of all
// of them in turn (interleaved, so that a drift of the machine hits all
// sides alike), and returns the measured values of each.
func (b *bench) compare(ctx context.Context, unit string, variants ...variant) ([]figure, error) {
	return b.rounds(ctx, unit, true, variants...)
}

// rounds is compare, with or without the warm-up round.
func (b *bench) rounds(ctx context.Context, unit string, warmUp bool, variants ...variant) ([]figure, error) {
	figs := make([]figure, len(variants))
	first := 0
	if !warmUp {
		first = 1
	}
	for i := first; i <= b.cfg.repeat; i++ {
		for j, v := range variants {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			b.measuring = i > 0
			val, err := v.fn(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.name, err)
			}
			round := "warm-up"
			if i > 0 {
				round = fmt.Sprintf("%d/%d", i, b.cfg.repeat)
				figs[j] = append(figs[j], val)
			}
			b.log.Printf("   %-48s %-7s %s %s", v.name, round, human(val), unit)
		}
	}
	return figs, nil
}

// loadAverage is the 1, 5 and 15 minute load averages of the machine: other
// work on it skews every figure.
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
