package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River's settings for the burn-down, those of its own benchmark (its
// default FetchCooldown of 100 ms caps it near MaxWorkers / 0.1 s).
const (
	riverFetchCooldown     = 2 * time.Millisecond
	riverFetchPollInterval = 20 * time.Millisecond
	riverPoolConns         = 20
	riverInsertChunk       = 10_000
)

// noopArgs is the job: the same payload as runledger's items.
type noopArgs struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

// Kind implements river.JobArgs.
func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

// Work does nothing.
func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// riverBench is River on its own scratch database, migrated with
// rivermigrate.
type riverBench struct {
	pool       *pgxpool.Pool
	n, workers int
}

func (b *bench) newRiver(ctx context.Context, n int) (*riverBench, error) {
	dsn, err := b.scratch.create(ctx, "river")
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = riverPoolConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err == nil {
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate River: %w", err)
	}
	return &riverBench{pool: pool, n: n, workers: b.cfg.riverWorkers}, nil
}

func (r *riverBench) close() { r.pool.Close() }

// burndown inserts n jobs with InsertMany (untimed), then starts a client
// and returns n / the time from Start until n jobs completed.
func (r *riverBench) burndown(ctx context.Context) (float64, error) {
	if _, err := r.pool.Exec(ctx, `TRUNCATE river_job`); err != nil {
		return 0, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(r.pool), &river.Config{
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		FetchCooldown:     riverFetchCooldown,
		FetchPollInterval: riverFetchPollInterval,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: r.workers}},
		Workers:           workers,
	})
	if err != nil {
		return 0, err
	}
	params := make([]river.InsertManyParams, 0, riverInsertChunk)
	for lo := 0; lo < r.n; lo += riverInsertChunk {
		params = params[:0]
		for i := lo; i < min(lo+riverInsertChunk, r.n); i++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{N: i, Name: fmt.Sprintf("item-%07d", i)}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, fmt.Errorf("InsertMany: %w", err)
		}
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE`); err != nil {
		return 0, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: r.n + 1000, // never drop an event
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	defer cancel()

	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	done := 0
	var werr error
	for done < r.n && werr == nil {
		select {
		case ev, ok := <-events:
			switch {
			case !ok:
				werr = fmt.Errorf("River stopped after %d of %d jobs", done, r.n)
			case ev.Kind != river.EventKindJobCompleted:
				werr = fmt.Errorf("River job %d: %s", ev.Job.ID, ev.Kind)
			default:
				done++
			}
		case <-ctx.Done():
			werr = ctx.Err()
		}
	}
	elapsed := time.Since(start)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer scancel()
	if err := client.Stop(sctx); err != nil && werr == nil {
		werr = fmt.Errorf("stop River: %w", err)
	}
	if werr != nil {
		return 0, werr
	}
	return float64(r.n) / elapsed.Seconds(), nil
}

var _ river.Worker[noopArgs] = noopWorker{}
