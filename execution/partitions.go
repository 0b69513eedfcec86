package execution

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/runledger/runledger/internal/layout"
)

// DefaultPartitionsAhead is how many months after the current one
// EnsurePartitions and the Runner's maintainer keep partitions for.
const DefaultPartitionsAhead = layout.DefaultAhead

// Partitioned reports whether the database has the partitioned layout
// (migrate.Partition, docs/scaling.md section 3).
func (c *Client) Partitioned(ctx context.Context) (bool, error) {
	kind, err := layout.Current(ctx, c.sql)
	if err != nil {
		return false, fmt.Errorf("execution: %w", err)
	}
	return kind == layout.Partitioned, nil
}

// EnsurePartitions creates the missing partitions of item_execution and
// item_state_history for the current month and the ahead months after it
// (ahead <= 0: DefaultPartitionsAhead) and returns the months it created.
// The partitioned layout has no default partition: an item execution made
// in a month without one cannot be inserted, so something must run this
// before each month starts. The Runner's elected maintainer does, every
// maintenance round; call it yourself (a daily job) without a Runner. On
// the plain layout it does nothing. Concurrent calls are serialized by an
// advisory lock; one that finds everything in place takes no lock at all.
func (c *Client) EnsurePartitions(ctx context.Context, ahead int) ([]time.Time, error) {
	if ahead <= 0 {
		ahead = DefaultPartitionsAhead
	}
	months, err := layout.Ensure(ctx, c.sql, ahead, time.Now())
	switch {
	case errors.Is(err, layout.ErrPlain):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("execution: ensure partitions: %w", translate(ctx, err))
	}
	return months, nil
}

// DropResult is what DropPartitions did.
type DropResult struct {
	// Months are the months whose partitions were dropped, oldest first.
	Months []time.Time
	// Kept are the months old enough to go that hold an item execution of a
	// run that is unfinished or finished at or after the cutoff.
	Kept []time.Time
	// Runs counts the runs deleted with the months (with what was left of
	// them in other months: a run can straddle a month boundary).
	Runs int64
}

// dropLockTimeout bounds how long a drop waits for its locks: while it
// waits for item_execution, the statements queued behind it wait too.
const dropLockTimeout = "5s"

// DropPartitions removes whole months of the partitioned layout: the
// partitions of item_execution and item_state_history of each month that
// ended before olderThan (and before the current month), when every run
// with an item execution in it is finished (a terminal status) and
// finished before olderThan. Each month goes in one transaction: the runs
// are locked and checked, the two partitions detached and dropped (no row
// is deleted one by one: no WAL per row, no dead tuples), then the runs
// deleted, whose cascade takes what they had in other months, their batch
// executions, status_count rows and links. A month holding a run that is
// not purgeable is kept and reported in Kept; later months are still
// considered. On the plain layout it returns ErrPlainLayout: use Purge.
//
// A drop briefly holds an ACCESS EXCLUSIVE lock on the month's partitions
// and on item_execution (DETACH PARTITION), waiting at most 5s for it.
// Purge keeps working on both layouts for what DropPartitions leaves.
func (c *Client) DropPartitions(ctx context.Context, olderThan time.Time) (DropResult, error) {
	var res DropResult
	ok, err := c.Partitioned(ctx)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrPlainLayout
	}
	parts, err := layout.Partitions(ctx, c.sql)
	if err != nil {
		return res, fmt.Errorf("execution: drop partitions: %w", err)
	}
	current := layout.MonthStart(time.Now())
	for _, p := range parts {
		end := p.Month.AddDate(0, 1, 0)
		if end.After(olderThan) || end.After(current) {
			break
		}
		dropped, runs, err := c.dropMonth(ctx, p, olderThan)
		if err != nil {
			return res, fmt.Errorf("execution: drop partitions of %s: %w", p.Month.Format("2006-01"), err)
		}
		if !dropped {
			res.Kept = append(res.Kept, p.Month)
			continue
		}
		res.Months = append(res.Months, p.Month)
		res.Runs += runs
	}
	return res, nil
}

// ErrPlainLayout is returned by DropPartitions on a database whose layout is
// not partitioned.
var ErrPlainLayout = errors.New("execution: the database is not partitioned (see migrate.Partition); use Purge")

// dropMonth drops one month in one transaction when its runs allow it.
func (c *Client) dropMonth(ctx context.Context, p layout.Partition, olderThan time.Time) (dropped bool, runs int64, err error) {
	tx, err := c.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, translate(ctx, err)
	}
	defer func() { _ = tx.Rollback() }()
	ie, h := pq.QuoteIdentifier(p.ItemExecution), pq.QuoteIdentifier(p.History)
	stmts := []string{
		`SET LOCAL lock_timeout = '` + dropLockTimeout + `'`,
		`SELECT pg_advisory_xact_lock(hashtextextended('runledger.partitions', 0))`,
		// Nothing enters or leaves the month while its runs are checked.
		`LOCK TABLE ` + ie + ` IN ACCESS EXCLUSIVE MODE`,
	}
	if p.History != "" {
		stmts = append(stmts, `LOCK TABLE `+h+` IN ACCESS EXCLUSIVE MODE`)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, 0, translate(ctx, err)
		}
	}
	ids, err := queryIDs(ctx, tx, `SELECT DISTINCT run_id FROM `+ie)
	if err != nil {
		return false, 0, err
	}
	if len(ids) > 0 {
		// Lock the runs that may go; every run of the month must be one.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT id FROM run WHERE id = ANY($1)
			AND (status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'::text[]) AND finished_at < $2
			ORDER BY id FOR UPDATE) r`, uuidArray(ids), olderThan).Scan(&n); err != nil {
			return false, 0, translate(ctx, err)
		}
		if n != len(ids) {
			return false, 0, nil
		}
	}
	stmts = nil
	if p.History != "" {
		stmts = append(stmts, `ALTER TABLE item_state_history DETACH PARTITION `+h, `DROP TABLE `+h)
	}
	stmts = append(stmts, `ALTER TABLE item_execution DETACH PARTITION `+ie, `DROP TABLE `+ie)
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, 0, translate(ctx, err)
		}
	}
	if len(ids) > 0 {
		r, err := tx.ExecContext(ctx, `DELETE FROM run WHERE id = ANY($1)`, uuidArray(ids))
		if err != nil {
			return false, 0, translate(ctx, err)
		}
		runs, _ = r.RowsAffected()
	}
	if err := tx.Commit(); err != nil {
		return false, 0, translate(ctx, err)
	}
	return true, runs, nil
}
