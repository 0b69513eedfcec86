package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// scaleBatches is the number of batches a progress / claim run is split in.
const scaleBatches = 10

// scaleRun is a started run of n queued items (scaleBatches batches), on a
// database of its own, shared by the progress and claim workloads.
type scaleRun struct {
	d        *db.DB
	x        *execution.Client
	run      uuid.UUID
	n        int
	finished int // items the progress workload's activity completed: no longer claimable
}

func (b *bench) scaleRun(ctx context.Context, n int) (*scaleRun, error) {
	if s, ok := b.scale[n]; ok {
		return s, nil
	}
	d, _, err := b.scratch.runledger(ctx, "scale_"+count(n), 4)
	if err != nil {
		return nil, err
	}
	// Failed items come back at once: claim latency recycles its items.
	x := execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	auto, batches, err := newAutomation(ctx, d, "scale", b.cfg.schema, scaleBatches)
	if err == nil {
		b.log.Printf("   setting up a run of %s items", count(n))
		err = fill(ctx, x, batches, n/scaleBatches)
	}
	var r uuid.UUID
	if err == nil {
		started, serr := x.StartRun(ctx, auto, execution.StartOptions{MaxAttempts: 1 << 30})
		err = serr
		if started != nil {
			r = started.ID
		}
	}
	if err == nil {
		err = analyze(ctx, d.SQL())
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	s := &scaleRun{d: d, x: x, run: r, n: n / scaleBatches * scaleBatches}
	b.scale[n] = s
	return s, nil
}

func (b *bench) closeScale() {
	for n, s := range b.scale {
		s.d.Close()
		delete(b.scale, n)
	}
}

// medianOf times calls runs of fn and returns their median in ms.
func medianOf(ctx context.Context, calls int, fn func(ctx context.Context) error) (float64, error) {
	f := make(figure, 0, calls)
	for range calls {
		start := time.Now()
		if err := fn(ctx); err != nil {
			return 0, err
		}
		f = append(f, float64(time.Since(start).Microseconds())/1000)
	}
	return f.median(), nil
}

// progress: Progress on a run of -large items against one of -small items
// (the ratio should stay near 1), and against a raw COUNT(*) ... GROUP BY on
// the large run. Before each repetition a few claims and completions add to
// the run's status_count ledger, as a live run would.
func (b *bench) progress(ctx context.Context) error {
	small, err := b.scaleRun(ctx, b.cfg.smallN)
	if err != nil {
		return err
	}
	large, err := b.scaleRun(ctx, b.cfg.largeN)
	if err != nil {
		return err
	}
	activity := func(s *scaleRun) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			for range 5 {
				done, err := runledgerStep(ctx, s.x, "progress-worker", 10)
				if err != nil {
					return err
				}
				s.finished += done
			}
			return nil
		}
	}
	call := func(s *scaleRun) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			if err := activity(s)(ctx); err != nil {
				return 0, err
			}
			return medianOf(ctx, b.cfg.latencyCalls, func(ctx context.Context) error {
				p, err := s.x.Progress(ctx, s.run)
				if err == nil && p.Counts.Total() != int64(s.n) {
					err = fmt.Errorf("Progress counted %d of %d items", p.Counts.Total(), s.n)
				}
				return err
			})
		}
	}
	rawCount := func(ctx context.Context) (float64, error) {
		return medianOf(ctx, max(3, b.cfg.latencyCalls/4), func(ctx context.Context) error {
			rows, err := large.d.SQL().QueryContext(ctx, `SELECT status, count(*) FROM item_execution WHERE run_id = $1 GROUP BY status`, large.run)
			if err != nil {
				return err
			}
			var total int64
			for rows.Next() {
				var (
					status string
					n      int64
				)
				if err := rows.Scan(&status, &n); err != nil {
					rows.Close()
					return err
				}
				total += n
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if total != int64(large.n) {
				return fmt.Errorf("COUNT(*) counted %d of %d items", total, large.n)
			}
			return rows.Close()
		})
	}
	figs, err := b.compare(ctx, "ms",
		variant{"progress: Progress, " + count(large.n) + " items", call(large)},
		variant{"progress: Progress, " + count(small.n) + " items", call(small)},
		variant{"progress: raw COUNT(*) GROUP BY, " + count(large.n), rawCount},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows,
		row{workload: fmt.Sprintf("progress latency: %s vs %s items", count(large.n), count(small.n)), ours: figs[0], base: figs[1], unit: "ms", target: target{ratioAtMost, 2}},
		row{workload: fmt.Sprintf("progress %s: Progress vs raw COUNT(*) GROUP BY", count(large.n)), ours: figs[0], base: figs[2], unit: "ms"},
	)
	return nil
}

// claim: the latency of one Claim of -batch items on a run of -large items
// against one of -small items. Each claimed batch is failed right away
// (untimed) and comes back 1 ms later, so the claimable set keeps its size.
func (b *bench) claim(ctx context.Context) error {
	small, err := b.scaleRun(ctx, b.cfg.smallN)
	if err != nil {
		return err
	}
	large, err := b.scaleRun(ctx, b.cfg.largeN)
	if err != nil {
		return err
	}
	batch := b.cfg.batch
	call := func(s *scaleRun) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			var times figure
			for range b.cfg.latencyCalls {
				start := time.Now()
				claimed, err := s.x.Claim(ctx, "claim-worker", batch, time.Minute)
				if err != nil {
					return 0, err
				}
				times = append(times, float64(time.Since(start).Microseconds())/1000)
				if want := min(batch, s.n-s.finished); len(claimed) != want {
					return 0, fmt.Errorf("claimed %d of %d items", len(claimed), want)
				}
				failures := make([]execution.Failure, len(claimed))
				for i, c := range claimed {
					failures[i] = execution.Failure{ID: c.ID, Error: "bench: recycled"}
				}
				if _, err := s.x.Fail(ctx, "claim-worker", failures); err != nil {
					return 0, err
				}
				// Untimed: let the 1 ms backoff (and its jitter) pass, so
				// that a run no larger than one batch is wholly claimable.
				time.Sleep(5 * time.Millisecond)
			}
			return times.median(), nil
		}
	}
	figs, err := b.compare(ctx, "ms",
		variant{fmt.Sprintf("claim %d: %s items", batch, count(large.n)), call(large)},
		variant{fmt.Sprintf("claim %d: %s items", batch, count(small.n)), call(small)},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{workload: fmt.Sprintf("claim latency (n=%d): %s vs %s items", batch, count(large.n), count(small.n)), ours: figs[0], base: figs[1], unit: "ms", target: target{ratioAtMost, 2}})
	return nil
}
