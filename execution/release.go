package execution

import (
	"context"
	"database/sql"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
)

const releaseSQL = `
UPDATE item_execution ie SET
	status = CASE WHEN ie.cancel_requested THEN 'cancelled' ELSE 'retrying' END,
	not_before = now(),
	error_message = CASE WHEN ie.cancel_requested
		THEN 'cancelled: ' || coalesce((SELECT cancellation_reason FROM run WHERE id = ie.run_id), '')
		ELSE 'handed back by worker ' || $1 || ' before it finished' END,
	finished_at = CASE WHEN ie.cancel_requested THEN now() ELSE NULL END,
	lease_expires_at = NULL,
	updated_by = $1,
	` + touched + `
WHERE ie.id = ANY($2::uuid[]) AND ie.claimed_by = $1 AND ` + heldByWorker + `
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Release hands items worker holds back before it finished them (a worker
// shutting down): they go to retrying, claimable again at once, or to
// cancelled when their run was cancelled meanwhile. The interrupted attempt
// stays counted in attempt_count and in the history (every claim is an
// attempt), but a release never fails an item: one released on its last
// attempt gets one more. Items worker does not hold are left alone and
// returned in a *LeaseLostError.
func (c *Client) Release(ctx context.Context, worker string, ids []uuid.UUID) (Report, error) {
	if err := validWorker(worker); err != nil {
		return Report{}, err
	}
	var (
		rep Report
		bes []uuid.UUID
	)
	if len(ids) == 0 {
		return rep, nil
	}
	held := make(map[uuid.UUID]bool, len(ids))
	rows, err := c.query(ctx, releaseSQL, worker, uuidArray(ids))
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			id, be uuid.UUID
			status runledger.ExecutionStatus
		)
		if err := rows.Scan(&id, &be, &status); err != nil {
			return err
		}
		held[id] = true
		rep.add(id, status)
		if status == runledger.StatusCancelled {
			bes = append(bes, be)
		}
		return nil
	})
	if err != nil {
		return Report{}, outcomeUnknown("release", err)
	}
	c.rollupLogged(ctx, distinct(bes))
	var lost []uuid.UUID
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		return rep, &LeaseLostError{Worker: worker, IDs: lost}
	}
	return rep, nil
}
