package execution

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// PurgeOptions tune Purge. Zero values take the defaults.
type PurgeOptions struct {
	// BatchSize is the most rows one DELETE statement removes (default 5000).
	BatchSize int
	// Progress, when set, is called with the running totals after each
	// statement that deleted something.
	Progress func(PurgeResult)
}

// PurgeResult counts what Purge deleted.
type PurgeResult struct {
	Runs           int64 // runs deleted, with their batch executions and links
	ItemExecutions int64 // item executions deleted, with their history
}

// purgeCondition selects the runs Purge may delete: finished before $2.
const purgeCondition = `(status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'::text[]) AND finished_at < $2`

// purgeRunsSQL lists the next runs to purge, oldest first.
const purgeRunsSQL = `SELECT id FROM run WHERE ` + purgeCondition + ` ORDER BY finished_at, id LIMIT $1`

// purgeItemsSQL deletes up to $3 item executions of run $1, but only while
// the run is still purgeable; its row is share-locked for the statement so
// that nobody re-queues it meanwhile. The history goes by cascade; the
// database's count trigger records negative status_count deltas.
const purgeItemsSQL = `
DELETE FROM item_execution WHERE id IN (
	SELECT ie.id FROM item_execution ie
	WHERE ie.run_id = $1 AND EXISTS (SELECT 1 FROM run WHERE id = $1 AND ` + purgeCondition + ` FOR SHARE)
	LIMIT $3)`

// purgeRunSQL deletes the run itself; the database cascades to its batch
// executions (and their status_count rows) and run_orchestration links.
const purgeRunSQL = `DELETE FROM run WHERE id = $1 AND ` + purgeCondition

// Purge deletes the runs that finished (a terminal status) before olderThan,
// with everything that hangs off them: batch executions, item executions,
// item_state_history, status_count and run_orchestration rows. Automations,
// batches, items and orchestration instances are kept. Unfinished runs are
// never touched, nor is a run that leaves its terminal status while being
// purged.
//
// It works in bounded steps so that no lock is held long: a run's item
// executions are deleted BatchSize at a time, each DELETE its own short
// transaction, then the run, whose cascade has little left to do. The
// context is checked between statements; when it is done, Purge returns its
// error with the counts of what was already deleted (which stays deleted).
func (c *Client) Purge(ctx context.Context, olderThan time.Time, opts PurgeOptions) (PurgeResult, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	var res PurgeResult
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(res)
		}
	}
	interrupted := func(err error) (PurgeResult, error) {
		return res, fmt.Errorf("execution: purge interrupted after %d runs and %d item executions: %w", res.Runs, res.ItemExecutions, err)
	}
	// A run that stays (it left its terminal status under us) is skipped by
	// the next pages.
	skip := map[uuid.UUID]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return interrupted(err)
		}
		ids, err := c.purgeCandidates(ctx, olderThan, len(skip)+100)
		if err != nil {
			return interrupted(err)
		}
		fresh := 0
		for _, id := range ids {
			if skip[id] {
				continue
			}
			fresh++
			deleted, err := c.purgeRun(ctx, id, olderThan, opts.BatchSize, &res, progress)
			if err != nil {
				return interrupted(err)
			}
			if !deleted {
				skip[id] = true
			}
		}
		if fresh == 0 {
			return res, nil
		}
	}
}

// purgeCandidates lists up to limit purgeable runs.
func (c *Client) purgeCandidates(ctx context.Context, olderThan time.Time, limit int) ([]uuid.UUID, error) {
	return queryIDs(ctx, c.sql, purgeRunsSQL, limit, olderThan)
}

// purgeRun deletes one run's item executions chunk by chunk, then the run.
// It reports whether the run was deleted.
func (c *Client) purgeRun(ctx context.Context, id uuid.UUID, olderThan time.Time, size int, res *PurgeResult, progress func()) (bool, error) {
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		r, err := c.sql.ExecContext(ctx, purgeItemsSQL, id, olderThan, size)
		if err != nil {
			return false, fmt.Errorf("run %s: %w", id, translate(ctx, err))
		}
		n, err := r.RowsAffected()
		if err != nil {
			return false, fmt.Errorf("run %s: %w", id, translate(ctx, err))
		}
		if n > 0 {
			res.ItemExecutions += n
			progress()
		}
		if n < int64(size) {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r, err := c.sql.ExecContext(ctx, purgeRunSQL, id, olderThan)
	if err != nil {
		return false, fmt.Errorf("run %s: %w", id, translate(ctx, err))
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("run %s: %w", id, translate(ctx, err))
	}
	if n == 0 {
		return false, nil
	}
	res.Runs += n
	progress()
	return true, nil
}
