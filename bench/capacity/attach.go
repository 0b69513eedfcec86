package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// attachRun measures, once, a database that an earlier run of this program
// loaded (its loading stopped, its server still up): the stage a run that
// could not reach its last size got to.
func attachRun(ctx context.Context, cfg *config, header string, out io.Writer, logger *log.Logger) error {
	started := time.Now()
	d, err := db.Open(ctx, db.Config{URL: cfg.attach, PoolSize: cfg.workers + 2, MaxOverflow: 4})
	if err != nil {
		return err
	}
	defer d.Close()
	e := &env{cfg: cfg, log: logger, d: d, x: execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})}
	defer func() { _ = e.x.Close() }()
	if err := d.SQL().QueryRowContext(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&e.version); err != nil {
		return err
	}
	// The live run is the one run that never finishes.
	if err := d.SQL().QueryRowContext(ctx, `SELECT id FROM run WHERE finished_at IS NULL ORDER BY started_at LIMIT 1`).Scan(&e.live); err != nil {
		return fmt.Errorf("find the live run: %w", err)
	}
	var loadedRuns int
	if err := d.SQL().QueryRowContext(ctx, `SELECT count(*) FROM run WHERE error_summary = 'loaded by the capacity bench'`).Scan(&loadedRuns); err != nil {
		return err
	}
	st := &stage{target: loadedRuns * cfg.chunk}
	err = e.measure(ctx, st)
	printTable(out, header+"; "+e.version+fmt.Sprintf("; attached to an earlier run's database\ntotal duration %s; load average at end %s", time.Since(started).Round(time.Second), loadAverage()), []*stage{st}, cfg.markdown)
	return err
}
