package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
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
// Staleness is set when the counts come from a read-only pool
// (Config.ReadURL or OpenReplica): how far that server lags its primary.
type Progress struct {
	RunID     uuid.UUID                 `json:"run_id"`
	Status    runledger.ExecutionStatus `json:"status"`
	Counts    Counts                    `json:"counts"`
	Batches   []BatchProgress           `json:"batches"`
	Staleness *db.Staleness             `json:"staleness,omitempty"`
}

// BatchProgress is one batch execution's status and counts.
type BatchProgress struct {
	ID      uuid.UUID                 `json:"id"` // the batch execution
	BatchID uuid.UUID                 `json:"batch_id"`
	Name    string                    `json:"name"`
	Status  runledger.ExecutionStatus `json:"status"`
	Counts  Counts                    `json:"counts"`
}

// compactAfter is the number of status_count rows of a run past which the
// roll-up and CompactProgress fold them into one row per (batch execution,
// status).
const compactAfter = 512

// Progress returns counts by status for a run and each of its batch
// executions. It sums the run's status_count rows (kept by the database's
// triggers) instead of scanning its items, so it answers a 1M-item run about
// as fast as a 10k one; the roll-up and CompactProgress keep those rows few,
// and the sum is right however many there are.
//
// It only reads, on the read pool when the database has one (Config.ReadURL),
// so it works on a standby; the Staleness it then reports was read before the
// counts, so the counts are at least that fresh.
func (c *Client) Progress(ctx context.Context, runID uuid.UUID) (*Progress, error) {
	p := &Progress{RunID: runID, Counts: Counts{}}
	q := c.read.SQL()
	if c.read.ReadOnly() {
		st, err := c.read.Staleness(ctx)
		if err != nil {
			return nil, err
		}
		p.Staleness = st
	}
	var status string
	err := q.QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1`, runID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	p.Status = runledger.ExecutionStatus(status)
	batches, err := batchCounts(ctx, q, runID, p.Counts)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		p.Batches = append(p.Batches, BatchProgress{ID: b.ID, BatchID: b.Batch.ID, Name: b.Batch.Name, Status: b.Status, Counts: b.Counts})
	}
	return p, nil
}

// CompactProgress folds the status_count rows of every run that has more
// than compactAfter of them into one row per (batch execution, status), so
// that Progress and the roll-up keep reading few rows. The roll-up already
// compacts the runs it finishes work in; this catches the rest, and is meant
// for the elected maintainer on the primary. It does nothing on a standby
// (pg_is_in_recovery()) or a read-only session. Runs another process is
// compacting are skipped, not waited for.
func (c *Client) CompactProgress(ctx context.Context) error {
	var writable bool
	err := c.sql.QueryRowContext(ctx, `SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'`).Scan(&writable)
	if err != nil || !writable {
		return translate(ctx, err)
	}
	crowded, err := queryIDs(ctx, c.sql, `SELECT run_id FROM status_count GROUP BY run_id HAVING count(*) > $1`, compactAfter)
	if err != nil {
		return err
	}
	for _, run := range crowded {
		if err := c.compact(ctx, run); err != nil {
			return err
		}
	}
	return nil
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
