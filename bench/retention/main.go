// Command retention compares two ways of removing old finished work at
// scale: Purge (bounded DELETEs, the history by cascade) on the layout the
// migrations build, and dropping partitions on two prototype partitioned
// layouts of item_execution and item_state_history:
//
//   - v7: both tables partitioned by range of a time-ordered (version 7)
//     UUID, item_execution by its id and item_state_history by its
//     item_execution_id, one partition per month, so the foreign key from
//     history to item_execution is the partition key itself (cascades prune)
//     and item_execution keeps its one-column UUID primary key;
//   - month: both partitioned by month of the item execution's created_at,
//     which item_state_history carries as item_execution_created_at so that
//     its foreign key (item_execution_id, item_execution_created_at) includes
//     the partition key;
//   - shipped: the partitioned layout runledger ships (migrate.Partition,
//     the v7 design), converted after loading (timed and reported), one
//     month removed by Client.DropPartitions and nothing else.
//
// Each layout gets its own database on a private server (internal/pgserver,
// tuned for loading: fsync, synchronous_commit and autovacuum off;
// full_page_writes on, and a CHECKPOINT before each measured removal, so the
// WAL figures are what a production server writes), is loaded set-based with finished runs spread over
// -months months (triggers and foreign-key checks off on the loading
// connection only; the loader writes history and status counts itself), and
// then measured: Purge of the oldest month's runs on every layout, and on the
// partitioned ones also the removal of the next month by DETACH and DROP of
// its two partitions followed by a Purge of its (now empty) runs. Each figure
// has its time and the WAL it wrote.
//
//	cd bench && nice -n 19 go run ./retention                      # 10M history rows per layout
//	cd bench && go run ./retention -history 300000 -chunk 10000    # a quick look
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

	"github.com/runledger/runledger/internal/pgserver"
)

type config struct {
	history int
	months  int
	chunk   int
	layouts []string
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "retention:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "", log.Ltime)
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		logger.Printf("retention: %v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	var layouts string
	fs.IntVar(&cfg.history, "history", 10_000_000, "item_state_history rows to load per layout (about 3 per item execution)")
	fs.IntVar(&cfg.months, "months", 12, "months the loaded runs spread over (one partition each)")
	fs.IntVar(&cfg.chunk, "chunk", 100_000, "item executions per loaded run (a multiple of 10)")
	fs.StringVar(&layouts, "layouts", "plain,v7,month", "layouts to measure: plain, v7, month, shipped (the partitioned layout of migrate.Partition, removal by Client.DropPartitions)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.months < 3 || cfg.chunk < 10 || cfg.chunk%10 != 0 || cfg.history < 3*cfg.chunk*cfg.months {
		return nil, errors.New("need -months >= 3, -chunk a multiple of 10, and -history >= 3 * chunk * months")
	}
	for _, l := range strings.Split(layouts, ",") {
		switch l = strings.TrimSpace(l); l {
		case "plain", "v7", "month", "shipped":
			cfg.layouts = append(cfg.layouts, l)
		case "":
		default:
			return nil, fmt.Errorf("unknown layout %q", l)
		}
	}
	return cfg, nil
}

// result is one measured removal.
type result struct {
	layout, how       string
	itemExecs, hist   int64 // rows removed
	took              time.Duration
	wal               int64 // bytes
	totalHist, totalI int64 // loaded
	loss              string
}

func run(ctx context.Context, cfg *config, out io.Writer, logger *log.Logger) error {
	started := time.Now()
	header := fmt.Sprintf("command: %s\ndate: %s; %s; %d CPUs; load average at start %s",
		strings.TrimSpace("go run ./retention "+strings.Join(os.Args[1:], " ")), started.UTC().Format("2006-01-02 15:04 MST"),
		runtime.Version(), runtime.NumCPU(), loadAverage())
	logger.Print(strings.ReplaceAll(header, "\n", "; "))
	server, err := pgserver.Start(ctx, pgserver.Options{Logf: logger.Printf, Settings: map[string]string{
		// full_page_writes stays on: the WAL figures include the page images a
		// production server writes after each checkpoint.
		"fsync": "off", "synchronous_commit": "off", "autovacuum": "off",
		"shared_buffers": "1GB", "maintenance_work_mem": "256MB", "max_wal_size": "8GB", "checkpoint_timeout": "30min",
	}})
	if err != nil {
		return err
	}
	defer func() {
		if err := server.Close(); err != nil {
			logger.Printf("close server: %v", err)
		}
	}()
	var results []result
	defer func() { printResults(out, header, started, results) }()
	for _, name := range cfg.layouts {
		rs, err := measureLayout(ctx, cfg, server, name, logger)
		results = append(results, rs...)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func printResults(w io.Writer, header string, started time.Time, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "%s\ntotal duration %s; load average at end %s\n\n", header, time.Since(started).Round(time.Second), loadAverage())
	fmt.Fprintln(w, "| layout | removal of one month | item executions | history rows | time | WAL | loaded history rows | what the layout loses |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %.1f MB | %d | %s |\n", r.layout, r.how, r.itemExecs, r.hist,
			r.took.Round(time.Millisecond), float64(r.wal)/(1<<20), r.totalHist, r.loss)
	}
}

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
