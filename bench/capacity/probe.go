package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/runledger/runledger/bench/internal/procstat"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// probeRun measures, on the database of a running capacity server (-attach
// with -probe; pause the program that loaded it, kill -STOP), the server CPU
// of one Claim of cfg.batch items: cfg.calls claims, each failed back like
// the claim latency's, with the CPU of the whole server (the postmaster and
// every process under it) read from /proc before and after each call. CPU
// time does not depend on how busy the machine is, where latency does; the
// server must run on this machine.
func probeRun(ctx context.Context, cfg *config, header string, out io.Writer, logger *log.Logger) error {
	d, err := db.Open(ctx, db.Config{URL: cfg.attach, PoolSize: 1, MaxOverflow: 0})
	if err != nil {
		return err
	}
	defer d.Close()
	e := &env{cfg: cfg, log: logger, d: d, x: execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})}
	defer func() { _ = e.x.Close() }()
	var dataDir string
	if err := d.SQL().QueryRowContext(ctx, `SELECT current_setting('data_directory')`).Scan(&dataDir); err != nil {
		return err
	}
	pid, err := procstat.PostmasterPID(dataDir)
	if err != nil {
		return err
	}
	var finished int64
	if err := d.SQL().QueryRowContext(ctx, `SELECT coalesce(sum(delta), 0) FROM status_count WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')`).Scan(&finished); err != nil {
		return err
	}
	var claimCPU, failCPU, wall []float64
	for range cfg.calls {
		c0, err := procstat.ServerCPU(pid)
		if err != nil {
			return err
		}
		t := time.Now()
		got, err := e.x.Claim(ctx, "prober", cfg.batch, time.Minute)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		wall = append(wall, ms(time.Since(t)))
		c1, err := procstat.ServerCPU(pid)
		if err != nil {
			return err
		}
		if err := e.failBack(ctx, "prober", got); err != nil {
			return err
		}
		c2, err := procstat.ServerCPU(pid)
		if err != nil {
			return err
		}
		if len(got) != cfg.batch {
			return fmt.Errorf("claim took %d of %d items", len(got), cfg.batch)
		}
		claimCPU = append(claimCPU, ms(c1-c0))
		failCPU = append(failCPU, ms(c2-c1))
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	l := latencyOf(wall)
	fmt.Fprintf(out, "%s\nprobe of %s with %d finished item executions: %d claims of %d on one connection, each failed back\n"+
		"claim wall median %.2f ms (p90 %.2f); server CPU per claim %.2f ms, per Fail %.2f ms (mean; /proc ticks of %s); load average at end %s\n",
		header, "the attached database", finished, cfg.calls, cfg.batch, l.p50, l.p90, mean(claimCPU), mean(failCPU), procstat.ClockTick, loadAverage())
	return nil
}
