package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// runnerConcurrency is the Runner's Concurrency and River's MaxWorkers in
// the runner burn-down: like for like.
const runnerConcurrency = 100

// wakePoll is the fallback poll of both sides of the wake-up latency: a
// notification, not the poll, must wake them.
const wakePoll = 5 * time.Second

// noop is the Runner's no-op handler.
func noop(context.Context, execution.Claimed) (json.RawMessage, error) { return nil, nil }

// runnerBurndown: n no-op items through one Runner (Concurrency 100)
// against n no-op jobs through River's client (MaxWorkers 100), each timed
// from Start until every item is done, with the CPU per item on both sides.
func (b *bench) runnerBurndown(ctx context.Context) error {
	n := b.cfg.burnN
	f, err := b.newBurnFixture(ctx, "runner", 20)
	if err != nil {
		return err
	}
	defer f.d.Close()
	x, queue := f.x, f.queue
	ws := execution.NewWorkers()
	ws.Handle("runner", execution.HandlerFunc(noop), execution.HandlerOptions{Concurrency: runnerConcurrency})

	rv, err := b.newRiverDB(ctx, "river_runner", n)
	if err != nil {
		return err
	}
	defer rv.close()
	rv.workers = runnerConcurrency

	oursName := fmt.Sprintf("runner burn-down: Runner, Concurrency %d", runnerConcurrency)
	riverName := fmt.Sprintf("runner burn-down: River, MaxWorkers %d", runnerConcurrency)
	figs, err := b.compare(ctx, "items/s",
		variant{oursName, b.timedRate(oursName, b.scratch.dbName("runner"), n, queue, func(ctx context.Context) error {
			return runnerRun(ctx, x, ws, int64(n))
		})},
		variant{riverName, func(ctx context.Context) (float64, error) { return rv.burndown(ctx, b, riverName, false) }},
	)
	if err != nil {
		return err
	}
	cpu := func(name string) *cpuFigures {
		if f := b.cpu[name]; f != nil {
			return f
		}
		return &cpuFigures{}
	}
	label := fmt.Sprintf("runner burn-down %s, Concurrency %d", count(n), runnerConcurrency)
	b.rows = append(b.rows,
		row{workload: label + ": vs River (MaxWorkers " + fmt.Sprint(runnerConcurrency) + ")", ours: figs[0], base: figs[1], unit: "items/s", target: target{ratioAtLeast, 1}},
		row{workload: label + ": server CPU vs River", ours: cpu(oursName).server, base: cpu(riverName).server, unit: "µs/item"},
		row{workload: label + ": client CPU vs River", ours: cpu(oursName).client, base: cpu(riverName).client, unit: "µs/item"},
	)
	return nil
}

// runnerRun starts a Runner of ws, waits until it reported n items
// succeeded, and stops it.
func runnerRun(ctx context.Context, x *execution.Client, ws *execution.Workers, n int64) error {
	r, err := x.NewRunner(ws, execution.RunnerOptions{Name: "bench-runner"})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var werr error
	for werr == nil {
		st := r.Stats()
		if st.Succeeded >= n {
			break
		}
		if st.Failed+st.Retried+st.Cancelled > 0 {
			werr = fmt.Errorf("runner: %+v", st)
			break
		}
		select {
		case <-ctx.Done():
			werr = ctx.Err()
		case <-tick.C:
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return errors.Join(werr, r.Stop(sctx))
}

// wakeArgs is the job of River's wake-up latency.
type wakeArgs struct {
	N int `json:"n"`
}

// Kind implements river.JobArgs.
func (wakeArgs) Kind() string { return "bench_wake" }

// wakeWorker sends the time its Work was called.
type wakeWorker struct {
	river.WorkerDefaults[wakeArgs]
	called chan time.Time
}

// Work reports the time it was called.
func (w *wakeWorker) Work(context.Context, *river.Job[wakeArgs]) error {
	w.called <- time.Now()
	return nil
}

// wakeup: on an idle runner (fallback poll 5 s), the time from the commit
// of StartRun (one item) to its handler's call, against the time from the
// commit of River's InsertTx to its worker's Work, on an idle River client
// (FetchPollInterval 5 s, the rest River's defaults). Each repetition is
// -calls wake-ups; the rows are their median and p95. The clock starts
// right before the Commit call on both sides.
func (b *bench) wakeup(ctx context.Context) error {
	d, _, err := b.scratch.runledger(ctx, "wakeup", 4)
	if err != nil {
		return err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{})
	auto, batches, err := newAutomation(ctx, d, "wakeup", b.cfg.schema, 1)
	if err != nil {
		return err
	}
	if err := fill(ctx, x, batches, 1); err != nil {
		return err
	}
	called := make(chan time.Time, 16)
	ws := execution.NewWorkers()
	ws.Handle("wakeup", execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) {
		called <- time.Now()
		return nil, nil
	}), execution.HandlerOptions{})
	r, err := x.NewRunner(ws, execution.RunnerOptions{Name: "bench-wakeup", PollInterval: wakePoll})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.Stop(sctx)
	}()

	rv, err := b.newRiverDB(ctx, "river_wakeup", 0)
	if err != nil {
		return err
	}
	defer rv.close()
	rcalled := make(chan time.Time, 16)
	rws := river.NewWorkers()
	river.AddWorker(rws, &wakeWorker{called: rcalled})
	client, err := river.NewClient(riverpgxv5.New(rv.pool), &river.Config{
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		FetchPollInterval: wakePoll,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: runnerConcurrency}},
		Workers:           rws,
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	time.Sleep(500 * time.Millisecond) // both idle, listening

	p95 := map[string]figure{}
	measure := func(key string, once func(ctx context.Context) (time.Time, error), ch <-chan time.Time) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			var lat figure
			for range b.cfg.latencyCalls {
				time.Sleep(50 * time.Millisecond) // idle again
				committed, err := once(ctx)
				if err != nil {
					return 0, err
				}
				select {
				case at := <-ch:
					lat = append(lat, float64(at.Sub(committed).Microseconds())/1000)
				case <-time.After(3 * wakePoll):
					return 0, fmt.Errorf("%s: no call within %s", key, 3*wakePoll)
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			slices.Sort(lat)
			if b.measuring {
				p95[key] = append(p95[key], lat[(len(lat)*95+99)/100-1])
			}
			return lat.median(), nil
		}
	}
	startRun := func(ctx context.Context) (time.Time, error) {
		tx, err := d.SQL().BeginTx(ctx, nil)
		if err != nil {
			return time.Time{}, err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
		if _, err := x.StartRunTx(ctx, tx, auto, execution.StartOptions{}); err != nil {
			return time.Time{}, err
		}
		at := time.Now()
		return at, tx.Commit()
	}
	insert := func(ctx context.Context) (time.Time, error) {
		tx, err := rv.pool.Begin(ctx)
		if err != nil {
			return time.Time{}, err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
		if _, err := client.InsertTx(ctx, tx, wakeArgs{N: 1}, nil); err != nil {
			return time.Time{}, err
		}
		at := time.Now()
		return at, tx.Commit(ctx)
	}
	oursName, riverName := "wake-up: Runner, StartRun commit to handler", "wake-up: River, InsertTx commit to Work"
	figs, err := b.compare(ctx, "ms",
		variant{oursName, measure(oursName, startRun, called)},
		variant{riverName, measure(riverName, insert, rcalled)},
	)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("wake-up latency (idle, poll %s, %d calls)", wakePoll, b.cfg.latencyCalls)
	b.rows = append(b.rows,
		row{workload: label + ": median vs River", ours: figs[0], base: figs[1], unit: "ms", target: target{valueBelow, 100}},
		row{workload: label + ": p95 vs River", ours: p95[oursName], base: p95[riverName], unit: "ms"},
	)
	return nil
}

// scoped: the latency of ClaimFor(n = -batch) for automation A (a run of
// -small items) while automation B holds -scoped-backlog claimable items,
// against the same with B empty, each on a database of its own. Every
// claimed batch is failed (untimed) and comes back 1 ms later, so A's
// claimable set keeps its size. B's backlog is loaded with AddItems and
// StartRun (untimed setup).
func (b *bench) scoped(ctx context.Context) error {
	mk := func(purpose string, backlog int) (*db.DB, *execution.Client, error) {
		d, _, err := b.scratch.runledger(ctx, purpose, 4)
		if err != nil {
			return nil, nil, err
		}
		x := execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
		err = func() error {
			for _, a := range []struct {
				name string
				n    int
			}{{"A", b.cfg.smallN}, {"B", backlog}} {
				auto, batches, err := newAutomation(ctx, d, a.name, b.cfg.schema, max(1, a.n/100_000))
				if err != nil {
					return err
				}
				if a.n == 0 {
					continue
				}
				b.log.Printf("   %s: %s items for automation %s", purpose, count(a.n), a.name)
				if err := fill(ctx, x, batches, a.n/len(batches)); err != nil {
					return err
				}
				if _, err := x.StartRun(ctx, auto, execution.StartOptions{MaxAttempts: 1 << 30}); err != nil {
					return err
				}
			}
			return analyze(ctx, d.SQL())
		}()
		if err != nil {
			d.Close()
			return nil, nil, err
		}
		return d, x, nil
	}
	dFull, xFull, err := mk("scoped_full", b.cfg.scopedN)
	if err != nil {
		return err
	}
	defer dFull.Close()
	dEmpty, xEmpty, err := mk("scoped_empty", 0)
	if err != nil {
		return err
	}
	defer dEmpty.Close()
	batch := 100
	opts := execution.ClaimOptions{Automations: []string{"A"}}
	call := func(x *execution.Client) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			var times figure
			for range b.cfg.latencyCalls {
				start := time.Now()
				claimed, err := x.ClaimFor(ctx, "scoped-worker", batch, time.Minute, opts)
				if err != nil {
					return 0, err
				}
				times = append(times, float64(time.Since(start).Microseconds())/1000)
				if want := min(batch, b.cfg.smallN); len(claimed) != want {
					return 0, fmt.Errorf("claimed %d of %d items", len(claimed), want)
				}
				failures := make([]execution.Failure, len(claimed))
				for i, c := range claimed {
					if c.AutomationName != "A" {
						return 0, fmt.Errorf("ClaimFor A returned an item of %q", c.AutomationName)
					}
					failures[i] = execution.Failure{ID: c.ID, Error: "bench: recycled"}
				}
				if _, err := x.Fail(ctx, "scoped-worker", failures); err != nil {
					return 0, err
				}
			}
			return times.median(), nil
		}
	}
	figs, err := b.compare(ctx, "ms",
		variant{fmt.Sprintf("scoped claim %d for A: B holds %s items", batch, count(b.cfg.scopedN)), call(xFull)},
		variant{fmt.Sprintf("scoped claim %d for A: B empty", batch), call(xEmpty)},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{workload: fmt.Sprintf("scoped claim latency (ClaimFor A, n=%d, A %s items): B %s vs B empty", batch, count(b.cfg.smallN), count(b.cfg.scopedN)), ours: figs[0], base: figs[1], unit: "ms", target: target{ratioAtMost, 2}})
	return nil
}
