package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/migrate"
)

// env is the private server, the database and the fixtures on it.
type env struct {
	cfg     *config
	log     *log.Logger
	server  *pgserver.Server
	d       *db.DB
	x       *execution.Client
	loader  *sql.Conn // session_replication_role = replica: no triggers, no FK checks
	version string

	history   uuid.UUID // the automation whose runs are loaded finished
	historyAt time.Time // start time of the next loaded run
	live      uuid.UUID // the run with cfg.claimable claimable items
	runs      int       // runs loaded so far
}

func newEnv(ctx context.Context, cfg *config, logger *log.Logger) (e *env, err error) {
	e = &env{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	t0 := time.Now()
	e.server, err = pgserver.Start(ctx, pgserver.Options{Settings: cfg.settings, Logf: logger.Printf})
	if err != nil {
		return nil, err
	}
	admin, err := sql.Open("postgres", e.server.URL("postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE capacity`); err != nil {
		return nil, err
	}
	if err := admin.QueryRowContext(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&e.version); err != nil {
		return nil, err
	}
	target, err := sql.Open("postgres", e.server.URL("capacity"))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return nil, err
	}
	if _, err := migrate.Apply(ctx, target, dir, migrate.ApplyOptions{}); err != nil {
		return nil, err
	}
	e.d, err = db.Open(ctx, db.Config{URL: e.server.URL("capacity"), PoolSize: cfg.workers + 2, MaxOverflow: 4})
	if err != nil {
		return nil, err
	}
	// Failed items come back 1 ms later: claim latency and the churn recycle them.
	e.x = execution.New(e.d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	e.loader, err = e.d.SQL().Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := e.loader.ExecContext(ctx, `SET session_replication_role = replica`); err != nil {
		return nil, err
	}
	if e.history, err = e.automation(ctx, "history", e.cfg.chunk/10); err != nil {
		return nil, err
	}
	// A year back, so the loaded runs spread over months (as retention sees them).
	e.historyAt = time.Now().Add(-365 * 24 * time.Hour)
	live, err := e.automation(ctx, "live", e.cfg.claimable/10)
	if err != nil {
		return nil, err
	}
	r, err := e.x.StartRun(ctx, live, execution.StartOptions{MaxAttempts: 1 << 30})
	if err != nil {
		return nil, err
	}
	e.live = r.ID
	logger.Printf("   server, migrations and fixtures ready (%s)", time.Since(t0).Round(time.Millisecond))
	return e, nil
}

func (e *env) close() {
	if e.loader != nil {
		_ = e.loader.Close()
	}
	if e.x != nil {
		_ = e.x.Close()
	}
	if e.d != nil {
		_ = e.d.Close()
	}
	if e.server != nil {
		if err := e.server.Close(); err != nil {
			e.log.Printf("close server: %v", err)
		}
	}
}

// automation creates an automation with ten batches of perBatch items,
// set-based, and returns its id.
func (e *env) automation(ctx context.Context, name string, perBatch int) (uuid.UUID, error) {
	var id uuid.UUID
	err := e.d.SQL().QueryRowContext(ctx, `INSERT INTO automation (name, created_by, updated_by)
		VALUES ($1, 'capacity', 'capacity') RETURNING id`, name+"-"+uuid.NewString()[:8]).Scan(&id)
	if err != nil {
		return id, fmt.Errorf("create automation: %w", err)
	}
	_, err = e.d.SQL().ExecContext(ctx, `
		WITH b AS (
			INSERT INTO batch (automation_id, name, created_by, updated_by)
			SELECT $1, format('batch-%s', g), 'capacity', 'capacity' FROM generate_series(0, 9) g
			RETURNING id)
		INSERT INTO item (batch_id, sequence_number, payload, created_by, updated_by)
		SELECT b.id, s, jsonb_build_object('n', s), 'capacity', 'capacity'
		FROM b CROSS JOIN generate_series(0, $2::int - 1) s`, id, perBatch)
	if err != nil {
		return id, fmt.Errorf("create items: %w", err)
	}
	_, err = e.d.SQL().ExecContext(ctx, `ANALYZE batch; ANALYZE item`)
	return id, err
}

// loadRunSQL writes one finished run of the history automation on the
// loading connection, as the API and the triggers would have left it: every
// item execution finished (1 in 100 failed after two attempts, the rest
// succeeded at the first), version and attempt_count as their updates made
// them, their history rows (3 per succeeded item, 5 per failed one) and the
// run's status counts, compacted. $1 is the run id, $2 its start, $3 the
// automation; each statement takes the first n of them.
var loadRunSQL = []struct {
	n int
	q string
}{
	{3, `INSERT INTO run (id, automation_id, status, started_at, finished_at, created_at, updated_at,
		created_by, updated_by, version, error_summary)
	SELECT $1::uuid, $3::uuid, 'failed', $2::timestamptz, $2::timestamptz + interval '1 hour', $2::timestamptz, $2::timestamptz + interval '1 hour',
		'capacity', 'runledger', 3, 'loaded by the capacity bench'`},
	{3, `INSERT INTO batch_execution (run_id, batch_id, status, started_at, finished_at, created_at, updated_at,
		created_by, updated_by, version)
	SELECT $1::uuid, b.id, 'failed', $2::timestamptz, $2::timestamptz + interval '1 hour', $2::timestamptz, $2::timestamptz + interval '1 hour', 'capacity', 'runledger', 3
	FROM batch b WHERE b.automation_id = $3::uuid`},
	{3, `INSERT INTO item_execution (run_id, automation_id, batch_execution_id, item_id, status, started_at, finished_at,
		attempt_count, max_attempts, created_at, updated_at, created_by, updated_by, version,
		not_before, claimed_by, result_payload, error_message, priority)
	SELECT $1::uuid, $3::uuid, be.id, i.id, f.status, t.at, t.at + interval '150 ms',
		f.attempts, 3, $2::timestamptz, t.at + interval '150 ms', 'capacity', 'worker-1', 1 + 2 * f.attempts,
		$2::timestamptz, 'worker-1', f.result, f.error, 0
	FROM batch_execution be
	JOIN item i ON i.batch_id = be.batch_id
	CROSS JOIN LATERAL (SELECT $2::timestamptz + i.sequence_number * interval '200 ms' AS at) t
	CROSS JOIN LATERAL (SELECT
		CASE WHEN i.sequence_number % 100 = 99 THEN 'failed' ELSE 'succeeded' END AS status,
		CASE WHEN i.sequence_number % 100 = 99 THEN 2 ELSE 1 END AS attempts,
		CASE WHEN i.sequence_number % 100 = 99 THEN NULL ELSE '{"ok": true}'::jsonb END AS result,
		CASE WHEN i.sequence_number % 100 = 99 THEN 'loaded failure' END AS error) f
	WHERE be.run_id = $1::uuid`},
	{1, `INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
	SELECT ie.id, s.prev, s.next, ie.started_at + s.k * interval '30 ms', ie.started_at + s.k * interval '30 ms', 'worker-1'
	FROM item_execution ie
	JOIN (VALUES (0, NULL, 'queued', NULL), (1, 'queued', 'running', NULL),
		(2, 'running', 'succeeded', false),
		(2, 'running', 'retrying', true), (3, 'retrying', 'running', true), (4, 'running', 'failed', true)
	) AS s(k, prev, next, failing) ON s.failing IS NULL OR s.failing = (ie.status = 'failed')
	WHERE ie.run_id = $1::uuid`},
	{1, `INSERT INTO status_count (run_id, batch_execution_id, status, delta)
	SELECT $1::uuid, batch_execution_id, status, count(*) FROM item_execution
	WHERE run_id = $1::uuid
	GROUP BY batch_execution_id, status`},
}

// loadRun loads one finished run of cfg.chunk item executions in one
// transaction on the loading connection.
func (e *env) loadRun(ctx context.Context) error {
	tx, err := e.loader.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	id := uuid.New()
	at := e.historyAt
	args := []any{id, at, e.history}
	for _, st := range loadRunSQL {
		if _, err := tx.ExecContext(ctx, st.q, args[:st.n]...); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	e.runs++
	// Loaded runs cover the year before now evenly enough at 10M (100 runs
	// of 100k, one every 3.6 days).
	e.historyAt = e.historyAt.Add(87 * time.Hour)
	return nil
}
