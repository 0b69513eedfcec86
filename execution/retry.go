package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
)

// RetryResult tells what RetryItems did.
type RetryResult struct {
	Items           int64 // item executions put back to queued
	BatchExecutions int64 // finished batch executions reopened (queued)
	Run             bool  // whether the run was reopened (queued)
}

// retryable reports whether RetryItems may reopen items in status s: the
// terminal statuses the transition table lets go back to queued (failed,
// timed_out and cancelled).
func retryable(s runledger.ExecutionStatus) bool {
	return s.Terminal() && runledger.CanTransition(s, runledger.StatusQueued)
}

// retryItemsSQL reopens a finished run's items in the given statuses, their
// finished batch executions and the run, in one statement, and wakes the
// automation's runners on commit. Items go back to queued, claimable at
// once, with fresh attempts: attempt_count is kept (it counts the attempts
// made, as the history does) and max_attempts becomes attempt_count + $3.
// A NonRetryable mark and a pending cancellation are lifted; the last error
// stays until the next report replaces it. The batch executions and the run
// reopen only when some item did ($5: whether cancelled items are retried,
// which clears the run's cancellation reason). The database's triggers
// record each change in item_state_history (created_by = $4) and in
// status_count. It returns the items, batch executions and runs reopened.
const retryItemsSQL = `
WITH items AS (
	UPDATE item_execution ie SET
		status = 'queued',
		max_attempts = ie.attempt_count + $3,
		retryable = true,
		cancel_requested = false,
		not_before = now(),
		finished_at = NULL,
		lease_expires_at = NULL,
		updated_by = $4
	WHERE ie.run_id = $1 AND (ie.status)::text = ANY ($2::text[])
	RETURNING ie.batch_execution_id
), batches AS (
	UPDATE batch_execution be SET status = 'queued', finished_at = NULL, updated_by = $4
	WHERE be.run_id = $1 AND be.id IN (SELECT batch_execution_id FROM items)
		AND (be.status)::text = ANY ('{failed,cancelled,timed_out}'::text[])
	RETURNING 1
), runs AS (
	UPDATE run r SET status = 'queued', finished_at = NULL, error_summary = NULL,
		cancellation_reason = CASE WHEN $5 THEN NULL ELSE r.cancellation_reason END, updated_by = $4
	WHERE r.id = $1 AND EXISTS (SELECT 1 FROM items)
	RETURNING r.automation_id
)
SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM batches),
	(SELECT count(*) FROM runs WHERE pg_notify('` + notifyWork + `', automation_id::text) IS NOT NULL)`

// RetryItems puts the items of a finished run that ended in one of statuses
// (default failed and timed_out; cancelled may be named too) back to queued
// with fresh attempts (Options.DefaultMaxAttempts more than they have made),
// and reopens their batch executions and the run (queued), as the
// transition table allows for a manual retry. It is one transaction of
// set-based statements, whatever the number of items; the history records
// each item's change with the acting user (runledger.WithActor). When the
// run reopens, its error summary is cleared, and its cancellation reason too
// when cancelled items are retried.
//
// A run that is not finished is refused with a *runledger.TransitionError
// (from its status to queued); a missing run is runledger.ErrNotFound. A
// finished run without matching items is left as it is (zero result).
func (c *Client) RetryItems(ctx context.Context, runID uuid.UUID, statuses ...runledger.ExecutionStatus) (RetryResult, error) {
	if len(statuses) == 0 {
		statuses = []runledger.ExecutionStatus{runledger.StatusFailed, runledger.StatusTimedOut}
	}
	names := make([]string, 0, len(statuses))
	withCancelled := false
	for _, s := range statuses {
		if !retryable(s) {
			return RetryResult{}, &runledger.InvalidError{Field: "statuses", Reason: fmt.Sprintf("%q cannot be retried (failed, timed_out or cancelled)", s)}
		}
		withCancelled = withCancelled || s == runledger.StatusCancelled
		names = append(names, string(s))
	}
	actor := nullString(actorOf(ctx))
	var res RetryResult
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1 FOR NO KEY UPDATE`, runID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if st := runledger.ExecutionStatus(status); !st.Terminal() {
			return fmt.Errorf("execution: run %s is %s, not finished: only a finished run's items can be retried: %w",
				runID, st, &runledger.TransitionError{Table: "run", From: st, To: runledger.StatusQueued})
		}
		var runs int64
		if err := tx.QueryRowContext(ctx, retryItemsSQL, runID, pq.Array(names), c.opts.DefaultMaxAttempts, actor, withCancelled).
			Scan(&res.Items, &res.BatchExecutions, &runs); err != nil {
			return err
		}
		res.Run = runs == 1
		return nil
	})
	if err != nil {
		return RetryResult{}, err
	}
	return res, nil
}
