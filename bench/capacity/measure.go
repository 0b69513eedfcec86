package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runledger/runledger/bench/internal/table"
	"github.com/runledger/runledger/execution"
)

// stage is what one size measured.
type stage struct {
	target            int           // finished item executions loaded
	finished, history int64         // finished item executions and history rows at measurement
	load              time.Duration // loading up to target
	claim             latency       // Claim of cfg.batch items, ms
	progress          latency       // Progress of the live run, ms
	burn              float64       // items/s
	burnTook          time.Duration
	vacuum            time.Duration // VACUUM item_execution after the churn
	claimIndex        int64         // ix_item_execution_claim, bytes
	otherIndexes      int64         // the other indexes of item_execution
	historyIndexes    int64         // the indexes of item_state_history
	heap              int64         // item_execution + item_state_history tables, bytes
}

// latency is the median and 90th percentile of timed calls, in ms.
type latency struct{ p50, p90 float64 }

func latencyOf(ms []float64) latency {
	sort.Float64s(ms)
	return latency{p50: ms[len(ms)/2], p90: ms[len(ms)*9/10]}
}

// measure takes the figures of one size, in this order: vacuum and analyze
// what was loaded (untimed), claim latency, Progress latency, churn and a
// timed VACUUM, sizes, then the burn-down (whose items stay, finished).
func (e *env) measure(ctx context.Context, st *stage) error {
	e.log.Printf("== %s finished item executions loaded", count(st.target))
	t0 := time.Now()
	if _, err := e.d.SQL().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return fmt.Errorf("vacuum analyze: %w", err)
	}
	e.log.Printf("   VACUUM ANALYZE after loading (untimed): %s", time.Since(t0).Round(time.Millisecond))
	if err := e.d.SQL().QueryRowContext(ctx, `SELECT
		(SELECT coalesce(sum(delta), 0) FROM status_count WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')),
		(SELECT reltuples::bigint FROM pg_class WHERE relname = 'item_state_history')`).Scan(&st.finished, &st.history); err != nil {
		return err
	}

	// Claim latency: every claimed batch is failed back (untimed) and is
	// claimable again 1 ms later, so the claimable set keeps its size.
	var claims []float64
	for range e.cfg.calls {
		t := time.Now()
		got, err := e.x.Claim(ctx, "claimer", e.cfg.batch, time.Minute)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		claims = append(claims, ms(time.Since(t)))
		if len(got) != e.cfg.batch {
			return fmt.Errorf("claim took %d of %d items", len(got), e.cfg.batch)
		}
		if err := e.failBack(ctx, "claimer", got); err != nil {
			return err
		}
	}
	st.claim = latencyOf(claims)
	e.log.Printf("   claim (n=%d): median %.2f ms, p90 %.2f ms", e.cfg.batch, st.claim.p50, st.claim.p90)

	// Progress of the live run, after the maintainer's compaction.
	if err := e.x.CompactProgress(ctx); err != nil {
		return err
	}
	var progress []float64
	for range e.cfg.calls {
		t := time.Now()
		p, err := e.x.Progress(ctx, e.live)
		if err != nil {
			return fmt.Errorf("progress: %w", err)
		}
		progress = append(progress, ms(time.Since(t)))
		if p.Counts.Total() != int64(e.cfg.claimable) {
			return fmt.Errorf("Progress counted %d of %d items", p.Counts.Total(), e.cfg.claimable)
		}
	}
	st.progress = latencyOf(progress)
	e.log.Printf("   Progress (%s items): median %.2f ms, p90 %.2f ms", count(e.cfg.claimable), st.progress.p50, st.progress.p90)

	// Churn: claim and fail back cfg.churn items, then VACUUM item_execution.
	for done := 0; done < e.cfg.churn; {
		got, err := e.x.Claim(ctx, "churn", e.cfg.batch, time.Minute)
		if err != nil {
			return fmt.Errorf("churn: %w", err)
		}
		if err := e.failBack(ctx, "churn", got); err != nil {
			return err
		}
		done += len(got)
	}
	t0 = time.Now()
	if _, err := e.d.SQL().ExecContext(ctx, `VACUUM item_execution`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	st.vacuum = time.Since(t0)
	e.log.Printf("   VACUUM item_execution after %d claim+fail: %s", e.cfg.churn, st.vacuum.Round(time.Millisecond))

	if err := e.sizes(ctx, st); err != nil {
		return err
	}
	e.log.Printf("   indexes: claim %s, other item_execution %s, item_state_history %s; tables %s",
		mb(st.claimIndex), mb(st.otherIndexes), mb(st.historyIndexes), mb(st.heap))

	if e.cfg.burn > 0 {
		if err := e.burnDown(ctx, st); err != nil {
			return fmt.Errorf("burn-down: %w", err)
		}
		e.log.Printf("   burn-down %s items, %d workers, batch %d: %s, %.0f items/s", count(e.cfg.burn), e.cfg.workers, e.cfg.batch, st.burnTook.Round(time.Millisecond), st.burn)
	}
	return nil
}

// failBack fails claimed items back to retrying.
func (e *env) failBack(ctx context.Context, worker string, got []execution.Claimed) error {
	if len(got) == 0 {
		return nil
	}
	fails := make([]execution.Failure, len(got))
	for i, c := range got {
		fails[i] = execution.Failure{ID: c.ID, Error: "again"}
	}
	_, err := e.x.Fail(ctx, worker, fails)
	time.Sleep(2 * time.Millisecond) // their backoff
	return err
}

func (e *env) sizes(ctx context.Context, st *stage) error {
	rows, err := e.d.SQL().QueryContext(ctx, `
		SELECT c.relname, i.relname, pg_relation_size(i.oid)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
		WHERE c.relname IN ('item_execution', 'item_state_history')`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			table, index string
			size         int64
		)
		if err := rows.Scan(&table, &index, &size); err != nil {
			return err
		}
		switch {
		case index == "ix_item_execution_claim":
			st.claimIndex = size
		case table == "item_execution":
			st.otherIndexes += size
		default:
			st.historyIndexes += size
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return e.d.SQL().QueryRowContext(ctx, `SELECT pg_table_size('item_execution') + pg_table_size('item_state_history')`).Scan(&st.heap)
}

// burnDown starts a run of cfg.burn items (untimed) and times cfg.workers
// workers claiming and completing it until nothing is left.
func (e *env) burnDown(ctx context.Context, st *stage) error {
	auto, err := e.automation(ctx, "burn", e.cfg.burn/10)
	if err != nil {
		return err
	}
	r, err := e.x.StartRun(ctx, auto, execution.StartOptions{})
	if err != nil {
		return err
	}
	// Park the live run's items (scheduled, not before tomorrow) so that
	// the workers claim only the burn-down's; they come back afterwards.
	if _, err := e.d.SQL().ExecContext(ctx, `UPDATE item_execution SET status = 'scheduled', not_before = now() + interval '1 day'
		WHERE run_id = $1 AND status IN ('queued', 'retrying', 'scheduled')`, e.live); err != nil {
		return err
	}
	defer func() {
		_, _ = e.d.SQL().ExecContext(context.WithoutCancel(ctx), `UPDATE item_execution SET not_before = now() WHERE run_id = $1 AND status = 'scheduled'`, e.live)
	}()
	if _, err := e.d.SQL().ExecContext(ctx, `ANALYZE item_execution`); err != nil {
		return err
	}
	var (
		done  atomic.Int64
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	t0 := time.Now()
	for w := range e.cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("burn-%d", w)
			for {
				got, err := e.x.Claim(ctx, worker, e.cfg.batch, 5*time.Minute)
				if err == nil && len(got) > 0 {
					res := make([]execution.Result, len(got))
					for i, c := range got {
						res[i].ID = c.ID
					}
					var rep execution.Report
					rep, err = e.x.Complete(ctx, worker, res)
					done.Add(int64(len(rep.Succeeded)))
				}
				if err != nil {
					once.Do(func() { first = err })
					return
				}
				if len(got) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	st.burnTook = time.Since(t0)
	if first != nil {
		return first
	}
	if n := done.Load(); n != int64(e.cfg.burn) {
		return fmt.Errorf("completed %d of %d items", n, e.cfg.burn)
	}
	st.burn = float64(e.cfg.burn) / st.burnTook.Seconds()
	var status string
	if err := e.d.SQL().QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1`, r.ID).Scan(&status); err != nil {
		return err
	}
	if status != "succeeded" {
		return fmt.Errorf("burn-down run ended %s", status)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// printTable prints one column per size.
func printTable(w io.Writer, header string, stages []*stage, markdown bool) {
	cols := []string{"finished item executions (loaded)"}
	for _, s := range stages {
		cols = append(cols, count(s.target))
	}
	row := func(name string, f func(s *stage) string) []string {
		r := []string{name}
		for _, s := range stages {
			r = append(r, f(s))
		}
		return r
	}
	rows := [][]string{
		row("finished item executions at measurement", func(s *stage) string { return fmt.Sprint(s.finished) }),
		row("item_state_history rows (estimate)", func(s *stage) string { return fmt.Sprint(s.history) }),
		row("load time", func(s *stage) string { return s.load.Round(time.Second).String() }),
		row("claim n=100, median (p90) ms", func(s *stage) string { return fmt.Sprintf("%.2f (%.2f)", s.claim.p50, s.claim.p90) }),
		row("Progress, median (p90) ms", func(s *stage) string { return fmt.Sprintf("%.2f (%.2f)", s.progress.p50, s.progress.p90) }),
		row("burn-down items/s", func(s *stage) string { return fmt.Sprintf("%.0f", s.burn) }),
		row("VACUUM item_execution after churn", func(s *stage) string { return s.vacuum.Round(time.Millisecond).String() }),
		row("ix_item_execution_claim", func(s *stage) string { return mb(s.claimIndex) }),
		row("other item_execution indexes", func(s *stage) string { return mb(s.otherIndexes) }),
		row("item_state_history indexes", func(s *stage) string { return mb(s.historyIndexes) }),
		row("item_execution + history tables", func(s *stage) string { return mb(s.heap) }),
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	table.Write(w, cols, rows, markdown)
}
