package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"unicode/utf8"

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
// transaction and set-based statements (INSERT ... SELECT), whatever the
// number of items. The database records each item execution's first history
// row. Batch executions without items are succeeded at once, and so is a run
// without items (an automation with no batches, or only empty ones).
func (c *Client) StartRun(ctx context.Context, automationID uuid.UUID, opts StartOptions) (*ent.Run, error) {
	if err := c.validStart(&opts); err != nil {
		return nil, err
	}
	var runID uuid.UUID
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var err error
		runID, err = c.startRun(ctx, tx, automationID, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.db.Run.Get(ctx, runID)
}

// txQuerier is what StartRun and AddItems need of a transaction: both
// *sql.Tx and *ent.Tx have it.
type txQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Tx is a transaction StartRunTx and AddItemsTx run in: a *sql.Tx or an
// *ent.Tx (whose ExecContext and QueryContext come from the sql/execquery
// feature).
type Tx = txQuerier

var (
	_ Tx = (*sql.Tx)(nil)
	_ Tx = (*ent.Tx)(nil)
)

// queryRow runs a query that returns at most one row and scans it; no row
// is sql.ErrNoRows.
func queryRow(ctx context.Context, tx txQuerier, query string, args []any, dest ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// StartRunTx is StartRun inside the caller's transaction (a *sql.Tx or an
// *ent.Tx): the run, its batch executions and item executions become
// visible, and runners are woken, only if that transaction commits; a
// rollback leaves nothing, notifications included (River's InsertTx). It
// returns the run's id. Errors are translated, but the transaction is the
// caller's: after an error, roll it back.
func (c *Client) StartRunTx(ctx context.Context, tx Tx, automationID uuid.UUID, opts StartOptions) (uuid.UUID, error) {
	if err := c.validStart(&opts); err != nil {
		return uuid.Nil, err
	}
	id, err := c.startRun(ctx, tx, automationID, opts)
	return id, translate(ctx, err)
}

func (c *Client) validStart(opts *StartOptions) error {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = c.opts.DefaultMaxAttempts
	}
	if opts.MaxAttempts < 0 {
		return &runledger.InvalidError{Field: "MaxAttempts", Reason: "must be >= 1"}
	}
	if utf8.RuneCountInString(opts.CorrelationID) > 100 {
		return &runledger.InvalidError{Field: "CorrelationID", Reason: "at most 100 characters"}
	}
	return nil
}

// startRun is StartRun's transaction.
func (c *Client) startRun(ctx context.Context, tx txQuerier, automationID uuid.UUID, opts StartOptions) (uuid.UUID, error) {
	actor := nullString(actorOf(ctx))
	var runID uuid.UUID
	var bes []uuid.UUID
	var active bool
	err := queryRow(ctx, tx, `SELECT is_active FROM automation WHERE id = $1 FOR SHARE`, []any{automationID}, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return runID, fmt.Errorf("execution: automation %s: %w", automationID, runledger.ErrNotFound)
	}
	if err != nil {
		return runID, err
	}
	if !active {
		return runID, &runledger.InvalidError{Field: "automation", Reason: fmt.Sprintf("automation %s is inactive", automationID)}
	}
	if err := queryRow(ctx, tx, `INSERT INTO run (automation_id, status, correlation_id, created_by, updated_by)
		VALUES ($1, 'queued', nullif($2, ''), $3, $3) RETURNING id`, []any{automationID, opts.CorrelationID, actor}, &runID); err != nil {
		return runID, err
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
		return runID, err
	}
	if len(opts.Batches) > 0 && len(bes) != len(opts.Batches) {
		return runID, &runledger.InvalidError{Field: "Batches", Reason: fmt.Sprintf("%d of %d batches are not active batches of automation %s", len(opts.Batches)-len(bes), len(opts.Batches), automationID)}
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO item_execution (run_id, automation_id, batch_execution_id, item_id, status, max_attempts, priority, created_by, updated_by)
		SELECT $1, $5, be.id, i.id, 'queued', $2, $3, $4, $4
		FROM batch_execution be JOIN item i ON i.batch_id = be.batch_id
		WHERE be.run_id = $1 AND i.is_active`, runID, opts.MaxAttempts, opts.Priority, actor, automationID)
	if err != nil {
		return runID, err
	}
	items, err := r.RowsAffected()
	if err != nil {
		return runID, err
	}
	// Batch executions without items are finished at once, and so is a
	// run without items (no batches, or only empty ones): succeeded,
	// with zero counts, in this transaction.
	if _, err := tx.ExecContext(ctx, `UPDATE batch_execution be SET status = 'succeeded', started_at = now(), finished_at = now(), updated_by = 'runledger'
		WHERE be.run_id = $1 AND NOT EXISTS (SELECT 1 FROM item_execution ie WHERE ie.batch_execution_id = be.id)`, runID); err != nil {
		return runID, err
	}
	if items == 0 {
		_, err = tx.ExecContext(ctx, `UPDATE run SET status = 'succeeded', started_at = now(), finished_at = now(), updated_by = 'runledger' WHERE id = $1`, runID)
		return runID, err
	}
	// Idle runners of this automation wake up when the transaction commits
	// (and never hear of it if it rolls back).
	_, err = tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyWork, automationID.String())
	return runID, err
}

// CancelResult tells what CancelRun did.
type CancelResult struct {
	Cancelled int64 // items cancelled at once (not running)
	Flagged   int64 // running items flagged: cancelled at their worker's next report
	// AlreadyCancelled: an earlier CancelRun cancelled the run. Nothing was
	// changed and its reason stands.
	AlreadyCancelled bool
}

// CancelRun cancels a run: its unfinished items that are not running are
// cancelled at once, running ones are flagged (Heartbeat tells their worker)
// and cancelled when their worker next reports, and the run records reason.
// The run becomes cancelled when its last item finishes. Cancelling it again
// changes nothing (the first reason stands) and says so in
// CancelResult.AlreadyCancelled. Cancelling a run that finished otherwise is
// an *runledger.TransitionError.
func (c *Client) CancelRun(ctx context.Context, runID uuid.UUID, reason string) (CancelResult, error) {
	var res CancelResult
	actor := nullString(actorOf(ctx))
	var bes []uuid.UUID
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var (
			status    runledger.ExecutionStatus
			cancelled bool
		)
		err := tx.QueryRowContext(ctx, `SELECT status, cancellation_reason IS NOT NULL FROM run WHERE id = $1 FOR NO KEY UPDATE`, runID).Scan(&status, &cancelled)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if cancelled || status == runledger.StatusCancelled {
			res.AlreadyCancelled = true
			return nil
		}
		if status.Terminal() {
			return &runledger.TransitionError{Table: "run", From: status, To: runledger.StatusCancelled}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE run SET cancellation_reason = $2, updated_by = $3 WHERE id = $1`, runID, reason, actor); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `UPDATE item_execution SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL, updated_by = $2
			WHERE run_id = $1 AND (status)::text = ANY ('{pending,queued,scheduled,retrying}'::text[])`, runID, actor)
		if err != nil {
			return err
		}
		if res.Cancelled, err = r.RowsAffected(); err != nil {
			return err
		}
		r, err = tx.ExecContext(ctx, `UPDATE item_execution SET cancel_requested = true, updated_by = $2
			WHERE run_id = $1 AND status = 'running' AND NOT cancel_requested`, runID, actor)
		if err != nil {
			return err
		}
		if res.Flagged, err = r.RowsAffected(); err != nil {
			return err
		}
		if res.Flagged > 0 {
			// Runners holding the flagged items hear of it on commit.
			if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyCancel, runID.String()); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM batch_execution WHERE run_id = $1`, runID)
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
		if len(bes) == 0 {
			// Nothing to roll up: the run is cancelled now.
			_, err = tx.ExecContext(ctx, `UPDATE run SET status = 'cancelled', started_at = coalesce(started_at, now()), finished_at = now(), updated_by = $2 WHERE id = $1`, runID, actor)
		}
		return err
	})
	if err != nil {
		return CancelResult{}, err
	}
	c.rollupLogged(ctx, bes)
	return res, nil
}

func actorOf(ctx context.Context) string {
	a, _ := runledger.ActorFrom(ctx)
	return a
}

// The channels of the notifications a Runner listens to, sent inside the
// transaction of the change so that they are delivered on commit only.
const (
	notifyWork   = "runledger_work"   // payload: an automation id with new claimable items
	notifyCancel = "runledger_cancel" // payload: a run id whose running items were flagged
)
