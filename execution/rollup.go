package execution

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/dberr"
)

func translate(ctx context.Context, err error) error { return dberr.Translate(ctx, err) }

// rollupSQL finishes the given batch executions whose items are all
// terminal, then reports their runs. Whether items remain unfinished comes
// from the status_count ledger, not from the items: its cost does not grow
// with the batch. It runs after the item changes committed, in a fresh
// snapshot, so the last of several concurrent finishers always sees every
// item done; two that race on the same batch execution serialize on its row
// (locked in id order with FOR NO KEY UPDATE, so no deadlock and no conflict
// with foreign-key checks) and the second finds it already terminal. A batch
// execution or run row is only locked when it is about to change.
//
// Status: failed if any item failed or timed out, else cancelled if any was
// cancelled (or the run was cancelled), else succeeded.
//
// It returns, per batch execution: its run, whether this call finished it,
// and how many ledger rows it has (to decide on compaction).
const rollupSQL = `
WITH counts AS (
	SELECT b.id, b.run_id, s.open, s.bad, s.cancelled, s.ledger
	FROM batch_execution b
	CROSS JOIN LATERAL (
		SELECT
			coalesce(sum(sc.delta) FILTER (WHERE sc.status IN ('pending', 'queued', 'scheduled', 'running', 'retrying')), 0) AS open,
			coalesce(sum(sc.delta) FILTER (WHERE sc.status IN ('failed', 'timed_out')), 0) AS bad,
			coalesce(sum(sc.delta) FILTER (WHERE sc.status = 'cancelled'), 0) AS cancelled,
			count(*) AS ledger
		FROM status_count sc WHERE sc.batch_execution_id = b.id) s
	WHERE b.id = ANY($1::uuid[])
), finished AS (
	SELECT b.id FROM batch_execution b JOIN counts c ON c.id = b.id
	WHERE c.open = 0 AND (b.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])
	ORDER BY b.id
	FOR NO KEY UPDATE OF b
), done AS (
	UPDATE batch_execution b SET
		status = CASE WHEN c.bad > 0 THEN 'failed' WHEN c.cancelled > 0 THEN 'cancelled' ELSE 'succeeded' END,
		finished_at = greatest(now(), b.started_at),
		updated_by = 'runledger'
	FROM finished f JOIN counts c ON c.id = f.id
	WHERE b.id = f.id
		AND (b.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])
	RETURNING b.id
)
SELECT c.run_id, EXISTS (SELECT 1 FROM done d WHERE d.id = c.id), c.ledger FROM counts c`

const rollupRunSQL = `
WITH finished AS (
	SELECT r.id FROM run r
	WHERE r.id = ANY($1::uuid[])
		AND (r.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])
		AND NOT EXISTS (
			SELECT 1 FROM batch_execution be
			WHERE be.run_id = r.id
				AND (be.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[]))
	ORDER BY r.id
	FOR NO KEY UPDATE
), counts AS (
	SELECT x.id, s.total, s.failed, s.timed_out, s.cancelled
	FROM finished x
	CROSS JOIN LATERAL (
		SELECT
			coalesce(sum(sc.delta), 0) AS total,
			coalesce(sum(sc.delta) FILTER (WHERE sc.status = 'failed'), 0) AS failed,
			coalesce(sum(sc.delta) FILTER (WHERE sc.status = 'timed_out'), 0) AS timed_out,
			coalesce(sum(sc.delta) FILTER (WHERE sc.status = 'cancelled'), 0) AS cancelled
		FROM status_count sc WHERE sc.run_id = x.id) s
), bad_batches AS (
	SELECT be.run_id, string_agg(b.name, ', ' ORDER BY b.name) AS names
	FROM batch_execution be JOIN batch b ON b.id = be.batch_id
	WHERE be.run_id = ANY($1::uuid[]) AND be.status = 'failed'
	GROUP BY be.run_id
)
UPDATE run r SET
	status = CASE WHEN c.failed + c.timed_out > 0 THEN 'failed'
		WHEN c.cancelled > 0 OR r.cancellation_reason IS NOT NULL THEN 'cancelled'
		ELSE 'succeeded' END,
	finished_at = greatest(now(), r.started_at),
	error_summary = CASE WHEN c.failed + c.timed_out > 0 THEN
		format('%s of %s items did not succeed (%s failed, %s timed out, %s cancelled) in batch %s',
			c.failed + c.timed_out + c.cancelled, c.total, c.failed, c.timed_out, c.cancelled, coalesce(bb.names, '?'))
		ELSE r.error_summary END,
	updated_by = 'runledger'
FROM counts c LEFT JOIN bad_batches bb ON bb.run_id = c.id
WHERE r.id = c.id
	AND (r.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])`

// rollupTimeout bounds a roll-up that outlives its caller's context.
const rollupTimeout = 30 * time.Second

// rollupNow finishes what the changes to these batch executions finished
// (rollup shares it among concurrent reports: rollup_shared.go). The
// changes have committed, so it runs even if the caller's context ends now
// (bounded by rollupTimeout); if the process dies first, Rescue's sweep
// finishes the job.
func (c *Client) rollupNow(ctx context.Context, batchExecutions []uuid.UUID) error {
	if len(batchExecutions) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollupTimeout)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// A deadlock, serialization failure or lost connection
		// (ErrTransient) is retried: the statements are idempotent.
		if err = c.rollupOnce(ctx, batchExecutions); !errors.Is(err, runledger.ErrTransient) {
			return err
		}
	}
	return err
}

func (c *Client) rollupOnce(ctx context.Context, batchExecutions []uuid.UUID) error {
	var runs, crowded []uuid.UUID
	rows, err := c.query(ctx, rollupSQL, uuidArray(batchExecutions))
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			run      uuid.UUID
			finished bool
			ledger   int64
		)
		if err := rows.Scan(&run, &finished, &ledger); err != nil {
			return err
		}
		if finished {
			runs = append(runs, run)
		}
		if ledger > compactAfter {
			crowded = append(crowded, run)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, run := range distinct(crowded) {
		if err := c.compact(ctx, run); err != nil {
			return err
		}
	}
	return c.rollupRuns(ctx, distinct(runs))
}

// rollupRuns finishes the runs whose batch executions are all finished.
func (c *Client) rollupRuns(ctx context.Context, runs []uuid.UUID) error {
	if len(runs) == 0 {
		return nil
	}
	_, err := c.exec(ctx, rollupRunSQL, uuidArray(runs))
	return translate(ctx, err)
}

// sweep finishes batch executions and runs whose roll-up was lost (a
// process that died between reporting items and rolling them up). It reads
// only unfinished batch executions and runs, through their status indexes.
func (c *Client) sweep(ctx context.Context) error {
	ids := func(query string) ([]uuid.UUID, error) { return queryIDs(ctx, c.sql, query) }
	bes, err := ids(`SELECT b.id FROM batch_execution b
		WHERE (b.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])
			AND NOT EXISTS (SELECT 1 FROM status_count sc WHERE sc.batch_execution_id = b.id
				AND sc.status IN ('pending', 'queued', 'scheduled', 'running', 'retrying')
				GROUP BY sc.status HAVING sum(sc.delta) <> 0)`)
	if err != nil {
		return err
	}
	if err := c.rollup(ctx, bes); err != nil {
		return err
	}
	runs, err := ids(`SELECT r.id FROM run r
		WHERE (r.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[])
			AND NOT EXISTS (SELECT 1 FROM batch_execution be WHERE be.run_id = r.id
				AND (be.status)::text = ANY ('{pending,queued,scheduled,running,retrying}'::text[]))`)
	if err != nil {
		return err
	}
	return c.rollupRuns(ctx, runs)
}

// distinct returns the distinct ids in order of first appearance.
func distinct(ids []uuid.UUID) []uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
