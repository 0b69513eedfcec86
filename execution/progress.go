package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
)

// Counts holds item counts by status.
type Counts map[runledger.ExecutionStatus]int64

// Total is the number of items counted.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Finished is the number of items in a terminal status.
func (c Counts) Finished() int64 {
	var n int64
	for s, v := range c {
		if s.Terminal() {
			n += v
		}
	}
	return n
}

// Progress is a run's status and its items' counts, in all and per batch.
type Progress struct {
	RunID   uuid.UUID
	Status  runledger.ExecutionStatus
	Counts  Counts
	Batches []BatchProgress
}

// BatchProgress is one batch execution's status and counts.
type BatchProgress struct {
	ID      uuid.UUID // the batch execution
	BatchID uuid.UUID
	Name    string
	Status  runledger.ExecutionStatus
	Counts  Counts
}

// compactAfter is the number of status_count rows of a run past which
// Progress folds them into one row per (batch execution, status).
const compactAfter = 512

// Progress returns counts by status for a run and each of its batch
// executions. It sums the run's status_count rows (kept by the database's
// triggers) instead of scanning its items, and compacts them when they pile
// up, so it answers a 1M-item run about as fast as a 10k one.
func (c *Client) Progress(ctx context.Context, runID uuid.UUID) (*Progress, error) {
	p := &Progress{RunID: runID, Counts: Counts{}}
	var status string
	err := c.sql.QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1`, runID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	p.Status = runledger.ExecutionStatus(status)
	rows, err := c.sql.QueryContext(ctx, `
		SELECT be.id, be.batch_id, b.name, be.status, sc.status, coalesce(sc.n, 0), coalesce(sc.rows, 0)
		FROM batch_execution be
		JOIN batch b ON b.id = be.batch_id
		LEFT JOIN (
			SELECT batch_execution_id, status, sum(delta) AS n, count(*) AS rows
			FROM status_count WHERE run_id = $1
			GROUP BY batch_execution_id, status
		) sc ON sc.batch_execution_id = be.id
		WHERE be.run_id = $1
		ORDER BY b.name, be.id`, runID)
	if err != nil {
		return nil, translate(ctx, err)
	}
	defer rows.Close()
	index := map[uuid.UUID]int{}
	var ledgerRows int64
	for rows.Next() {
		var (
			beID, batchID  uuid.UUID
			name, beStatus string
			scStatus       sql.NullString
			n, countedRows int64
		)
		if err := rows.Scan(&beID, &batchID, &name, &beStatus, &scStatus, &n, &countedRows); err != nil {
			return nil, translate(ctx, err)
		}
		i, ok := index[beID]
		if !ok {
			i = len(p.Batches)
			index[beID] = i
			p.Batches = append(p.Batches, BatchProgress{ID: beID, BatchID: batchID, Name: name, Status: runledger.ExecutionStatus(beStatus), Counts: Counts{}})
		}
		ledgerRows += countedRows
		if scStatus.Valid && n != 0 {
			st := runledger.ExecutionStatus(scStatus.String)
			p.Batches[i].Counts[st] += n
			p.Counts[st] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(ctx, err)
	}
	if ledgerRows > compactAfter {
		if err := c.compact(ctx, runID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// compact folds a run's status_count rows into one per (batch execution,
// status) in one statement. Concurrent writers keep inserting (their rows
// are not touched). Only one compaction per run runs at a time (a
// transaction-level advisory lock, tried, never waited for): the others skip.
func (c *Client) compact(ctx context.Context, runID uuid.UUID) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		var mine bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0))`, "runledger.compact."+runID.String()).Scan(&mine); err != nil || !mine {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			WITH gone AS (
				DELETE FROM status_count WHERE run_id = $1
				RETURNING batch_execution_id, status, delta)
			INSERT INTO status_count (run_id, batch_execution_id, status, delta)
			SELECT $1, batch_execution_id, status, sum(delta) FROM gone
			GROUP BY batch_execution_id, status
			HAVING sum(delta) <> 0`, runID)
		return err
	})
}
