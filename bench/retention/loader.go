package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// loader writes finished runs of one automation on a connection with
// session_replication_role = replica (no triggers, no foreign-key checks),
// as the API and the triggers would have left them: 1 item in 100 failed
// after two attempts (5 history rows), the rest succeeded at the first (3).
type loader struct {
	conn  *sql.Conn
	auto  uuid.UUID
	stmts []string
}

func newLoader(ctx context.Context, q *sql.DB, layout string, chunk int) (*loader, error) {
	l := &loader{}
	if err := q.QueryRowContext(ctx, `INSERT INTO automation (name) VALUES ('retention') RETURNING id`).Scan(&l.auto); err != nil {
		return nil, err
	}
	if _, err := q.ExecContext(ctx, `
		WITH b AS (
			INSERT INTO batch (automation_id, name) SELECT $1, format('batch-%s', g) FROM generate_series(0, 9) g RETURNING id)
		INSERT INTO item (batch_id, sequence_number, payload)
		SELECT b.id, s, jsonb_build_object('n', s) FROM b CROSS JOIN generate_series(0, $2::int - 1) s`, l.auto, chunk/10); err != nil {
		return nil, err
	}
	ieID, ieIDCol, hID, hIDCol, hExtra, hExtraCol := "", "", "", "", "", ""
	switch layout {
	case "v7", "shipped":
		ieID, ieIDCol = "bench_uuidv7(t.at), ", "id, "
		hID, hIDCol = "bench_uuidv7(ie.started_at + s.k * interval '30 ms'), ", "id, "
	case "month":
		hExtra, hExtraCol = ", ie.created_at", ", item_execution_created_at"
	}
	l.stmts = []string{
		`INSERT INTO run (id, automation_id, status, started_at, finished_at, created_at, updated_at, created_by, updated_by, version, error_summary)
		SELECT $1::uuid, $3::uuid, 'failed', $2::timestamptz, $2::timestamptz + interval '1 hour', $2::timestamptz, $2::timestamptz + interval '1 hour',
			'retention', 'runledger', 3, 'loaded by the retention bench'`,
		`INSERT INTO batch_execution (run_id, batch_id, status, started_at, finished_at, created_at, updated_at, created_by, updated_by, version)
		SELECT $1::uuid, b.id, 'failed', $2::timestamptz, $2::timestamptz + interval '1 hour', $2::timestamptz, $2::timestamptz + interval '1 hour', 'retention', 'runledger', 3
		FROM batch b WHERE b.automation_id = $3::uuid`,
		`INSERT INTO item_execution (` + ieIDCol + `run_id, automation_id, batch_execution_id, item_id, status, started_at, finished_at,
			attempt_count, max_attempts, created_at, updated_at, created_by, updated_by, version, not_before, claimed_by, result_payload, error_message)
		SELECT ` + ieID + `$1::uuid, $3::uuid, be.id, i.id, f.status, t.at, t.at + interval '150 ms',
			f.attempts, 3, $2::timestamptz, t.at + interval '150 ms', 'retention', 'worker-1', 1 + 2 * f.attempts, $2::timestamptz, 'worker-1', f.result, f.error
		FROM batch_execution be
		JOIN item i ON i.batch_id = be.batch_id
		CROSS JOIN LATERAL (SELECT $2::timestamptz + i.sequence_number * interval '200 ms' AS at) t
		CROSS JOIN LATERAL (SELECT
			CASE WHEN i.sequence_number % 100 = 99 THEN 'failed' ELSE 'succeeded' END AS status,
			CASE WHEN i.sequence_number % 100 = 99 THEN 2 ELSE 1 END AS attempts,
			CASE WHEN i.sequence_number % 100 = 99 THEN NULL ELSE '{"ok": true}'::jsonb END AS result,
			CASE WHEN i.sequence_number % 100 = 99 THEN 'loaded failure' END AS error) f
		WHERE be.run_id = $1::uuid`,
		`INSERT INTO item_state_history (` + hIDCol + `item_execution_id, previous_status, new_status, changed_at, created_at, created_by` + hExtraCol + `)
		SELECT ` + hID + `ie.id, s.prev, s.next, ie.started_at + s.k * interval '30 ms', ie.started_at + s.k * interval '30 ms', 'worker-1'` + hExtra + `
		FROM item_execution ie
		JOIN (VALUES (0, NULL, 'queued', NULL), (1, 'queued', 'running', NULL),
			(2, 'running', 'succeeded', false),
			(2, 'running', 'retrying', true), (3, 'retrying', 'running', true), (4, 'running', 'failed', true)
		) AS s(k, prev, next, failing) ON s.failing IS NULL OR s.failing = (ie.status = 'failed')
		WHERE ie.run_id = $1::uuid`,
		`INSERT INTO status_count (run_id, batch_execution_id, status, delta)
		SELECT $1::uuid, batch_execution_id, status, count(*) FROM item_execution WHERE run_id = $1::uuid
		GROUP BY batch_execution_id, status`,
	}
	var err error
	if l.conn, err = q.Conn(ctx); err != nil {
		return nil, err
	}
	if _, err := l.conn.ExecContext(ctx, `SET session_replication_role = replica`); err != nil {
		_ = l.conn.Close()
		return nil, err
	}
	return l, nil
}

func (l *loader) close() { _ = l.conn.Close() }

// loadRun writes one finished run that started at at, in one transaction.
func (l *loader) loadRun(ctx context.Context, at time.Time) error {
	tx, err := l.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	id := uuid.New()
	for _, q := range l.stmts {
		args := []any{id, at, l.auto}
		if !strings.Contains(q, "$3") {
			args = args[:2]
			if !strings.Contains(q, "$2") {
				args = args[:1]
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%.60s…: %w", strings.TrimSpace(q), err)
		}
	}
	return tx.Commit()
}
