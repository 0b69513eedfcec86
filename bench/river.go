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

// auditArgs is the job of the River + audit baseline: the same payload.
type auditArgs struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

// Kind implements river.JobArgs.
func (auditArgs) Kind() string { return "bench_audit" }

// auditWorker is what a River user writes to get an audit trail of their
// jobs: one row per job, written with the job's completion in one
// transaction (river.JobCompleteTx), so the row exists exactly when the job
// completed. runledger records the same (and every earlier state change)
// set-based, by trigger.
type auditWorker struct {
	river.WorkerDefaults[auditArgs]
	pool *pgxpool.Pool
}

// Work records the audit row and completes the job in one transaction.
func (w *auditWorker) Work(ctx context.Context, job *river.Job[auditArgs]) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
	if _, err := tx.Exec(ctx, `INSERT INTO river_audit (job_id, kind, state) VALUES ($1, $2, 'completed')`, job.ID, job.Kind); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// riverAuditDDL is the audit table of the River + audit baseline.
const riverAuditDDL = `
CREATE TABLE river_audit (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id bigint NOT NULL,
	kind text NOT NULL,
	state text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now()
)`

// riverBench is River on its own scratch database, migrated with
// rivermigrate.
type riverBench struct {
	pool       *pgxpool.Pool
	n, workers int
	db         string // its database's name
}

func (b *bench) newRiver(ctx context.Context, n int) (*riverBench, error) {
	return b.newRiverDB(ctx, "river", n)
}

// newRiverDB is newRiver on the scratch database of purpose.
func (b *bench) newRiverDB(ctx context.Context, purpose string, n int) (*riverBench, error) {
	dsn, err := b.scratch.create(ctx, purpose)
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
	if err == nil {
		_, err = pool.Exec(ctx, riverAuditDDL)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate River: %w", err)
	}
	return &riverBench{pool: pool, n: n, workers: b.cfg.riverWorkers, db: b.scratch.dbName(purpose)}, nil
}

func (r *riverBench) close() { r.pool.Close() }

// burndown inserts n jobs with InsertMany (untimed), then starts a client
// and returns n / the time from Start until n jobs completed; b records the
// CPU it used under key. With audit, the jobs are done by auditWorker.
func (r *riverBench) burndown(ctx context.Context, b *bench, key string, audit bool) (float64, error) {
	n := r.n
	if audit {
		n = b.cfg.auditN
	}
	if _, err := r.pool.Exec(ctx, `TRUNCATE river_job, river_audit`); err != nil {
		return 0, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	river.AddWorker(workers, &auditWorker{pool: r.pool})
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
	for lo := 0; lo < n; lo += riverInsertChunk {
		params = params[:0]
		for i := lo; i < min(lo+riverInsertChunk, n); i++ {
			var args river.JobArgs = noopArgs{N: i, Name: fmt.Sprintf("item-%07d", i)}
			if audit {
				args = auditArgs{N: i, Name: fmt.Sprintf("item-%07d", i)}
			}
			params = append(params, river.InsertManyParams{Args: args})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, fmt.Errorf("InsertMany: %w", err)
		}
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE`); err != nil {
		return 0, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: n + 1000, // never drop an event
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	defer cancel()

	var elapsed time.Duration
	werr := b.measureCPU(ctx, key, r.db, n, func(ctx context.Context) error {
		start := time.Now()
		if err := client.Start(ctx); err != nil {
			return err
		}
		done := 0
		for done < n {
			select {
			case ev, ok := <-events:
				switch {
				case !ok:
					return fmt.Errorf("river stopped after %d of %d jobs", done, n)
				case ev.Kind != river.EventKindJobCompleted:
					return fmt.Errorf("river job %d: %s", ev.Job.ID, ev.Kind)
				default:
					done++
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		elapsed = time.Since(start)
		return nil
	})
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer scancel()
	if err := client.Stop(sctx); err != nil && werr == nil {
		werr = fmt.Errorf("stop River: %w", err)
	}
	if werr != nil {
		return 0, werr
	}
	if audit {
		var rows int
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM river_audit`).Scan(&rows); err != nil {
			return 0, err
		}
		if rows != n {
			return 0, fmt.Errorf("river + audit: %d audit rows for %d jobs", rows, n)
		}
	}
	return float64(n) / elapsed.Seconds(), nil
}

var _ river.Worker[noopArgs] = noopWorker{}
