package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
)

// StartOptions tune StartRun.
type StartOptions struct {
	// Batches limits the run to these batches of the automation; empty means
	// every active batch.
	Batches []uuid.UUID
	// CorrelationID is an external tracking id recorded on the run.
	CorrelationID string
	// MaxAttempts per item (default Options.DefaultMaxAttempts).
	MaxAttempts int32
	// Priority of the run's items: lower is claimed first (default 0).
	Priority int32
}

// StartRun creates a run of an active automation with one queued batch
// execution per batch and one queued item execution per active item, in one
// transaction and three set-based statements (INSERT ... SELECT), whatever
// the number of items. The database records each item execution's first
// history row.
func (c *Client) StartRun(ctx context.Context, automationID uuid.UUID, opts StartOptions) (*ent.Run, error) {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = c.opts.DefaultMaxAttempts
	}
	if opts.MaxAttempts < 0 {
		return nil, &runledger.InvalidError{Field: "MaxAttempts", Reason: "must be >= 1"}
	}
	if len(opts.CorrelationID) > 100 {
		return nil, &runledger.InvalidError{Field: "CorrelationID", Reason: "at most 100 characters"}
	}
	actor := nullString(actorOf(ctx))
	var runID uuid.UUID
	var bes []uuid.UUID
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var active bool
		err := tx.QueryRowContext(ctx, `SELECT is_active FROM automation WHERE id = $1 FOR SHARE`, automationID).Scan(&active)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("execution: automation %s: %w", automationID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !active {
			return &runledger.InvalidError{Field: "automation", Reason: fmt.Sprintf("automation %s is inactive", automationID)}
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO run (automation_id, status, correlation_id, created_by, updated_by)
			VALUES ($1, 'queued', nullif($2, ''), $3, $3) RETURNING id`, automationID, opts.CorrelationID, actor).Scan(&runID); err != nil {
			return err
		}
		var only any
		if len(opts.Batches) > 0 {
			only = uuidArray(opts.Batches)
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO batch_execution (run_id, batch_id, status, created_by, updated_by)
			SELECT $1, b.id, 'queued', $3, $3 FROM batch b
			WHERE b.automation_id = $2 AND b.is_active AND ($4::uuid[] IS NULL OR b.id = ANY($4::uuid[]))
			RETURNING id`, runID, automationID, actor, only)
		if err := each(ctx, rows, err, func(rows *sql.Rows) error {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			bes = append(bes, id)
			return nil
		}); err != nil {
			return err
		}
		if len(opts.Batches) > 0 && len(bes) != len(opts.Batches) {
			return &runledger.InvalidError{Field: "Batches", Reason: fmt.Sprintf("%d of %d batches are not active batches of automation %s", len(opts.Batches)-len(bes), len(opts.Batches), automationID)}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO item_execution (run_id, batch_execution_id, item_id, status, max_attempts, priority, created_by, updated_by)
			SELECT $1, be.id, i.id, 'queued', $2, $3, $4, $4
			FROM batch_execution be JOIN item i ON i.batch_id = be.batch_id
			WHERE be.run_id = $1 AND i.is_active`, runID, opts.MaxAttempts, opts.Priority, actor)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Batches without items are done at once.
	if err := c.rollup(ctx, bes); err != nil {
		return nil, err
	}
	return c.db.Run.Get(ctx, runID)
}

// CancelResult tells what CancelRun did.
type CancelResult struct {
	Cancelled int64 // items cancelled at once (not running)
	Flagged   int64 // running items flagged: cancelled at their worker's next report
}

// CancelRun cancels a run: its unfinished items that are not running are
// cancelled at once, running ones are flagged (Heartbeat tells their worker)
// and cancelled when their worker next reports, and the run records reason.
// The run becomes cancelled when its last item finishes. Cancelling a run
// that already finished is an *runledger.TransitionError.
func (c *Client) CancelRun(ctx context.Context, runID uuid.UUID, reason string) (CancelResult, error) {
	var res CancelResult
	actor := nullString(actorOf(ctx))
	var bes []uuid.UUID
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1 FOR NO KEY UPDATE`, runID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if runledger.ExecutionStatus(status).Terminal() {
			return &runledger.TransitionError{Table: "run", From: runledger.ExecutionStatus(status), To: runledger.StatusCancelled}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE run SET cancellation_reason = $2, updated_by = $3 WHERE id = $1`, runID, reason, actor); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `UPDATE item_execution SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL, updated_by = $2
			WHERE run_id = $1 AND (status)::text = ANY ('{pending,queued,scheduled,retrying}'::text[])`, runID, actor)
		if err != nil {
			return err
		}
		res.Cancelled, _ = r.RowsAffected()
		r, err = tx.ExecContext(ctx, `UPDATE item_execution SET cancel_requested = true, updated_by = $2
			WHERE run_id = $1 AND status = 'running' AND NOT cancel_requested`, runID, actor)
		if err != nil {
			return err
		}
		res.Flagged, _ = r.RowsAffected()
		rows, err := tx.QueryContext(ctx, `SELECT id FROM batch_execution WHERE run_id = $1`, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			bes = append(bes, id)
		}
		return rows.Err()
	})
	if err != nil {
		return res, err
	}
	if err := c.rollup(ctx, bes); err != nil {
		return res, err
	}
	// A run with no batch execution at all has nothing to roll up.
	if len(bes) == 0 {
		_, err = c.sql.ExecContext(ctx, `UPDATE run SET status = 'cancelled', finished_at = now() WHERE id = $1 AND NOT (status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'::text[])`, runID)
	}
	return res, translate(ctx, err)
}

func actorOf(ctx context.Context) string {
	a, _ := runledger.ActorFrom(ctx)
	return a
}
