package execution

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/payload"
)

// Claimed is an item handed to a worker.
type Claimed struct {
	ID               uuid.UUID // the item execution
	RunID            uuid.UUID
	BatchExecutionID uuid.UUID
	ItemID           uuid.UUID
	SequenceNumber   int32
	Payload          json.RawMessage
	Attempt          int32 // 1 for the first attempt
	MaxAttempts      *int32
	LeaseExpiresAt   time.Time
	AutomationID     uuid.UUID // the automation of the item's run
	AutomationName   string    // its name
}

// MaxClaim is the largest number of items one Claim may ask for.
const MaxClaim = 10000

// MinLease is the shortest lease Claim and Heartbeat accept: a shorter one
// could expire before the worker hears of it.
const MinLease = time.Second

func validClaim(worker string, n int, lease time.Duration) error {
	if err := validWorker(worker); err != nil {
		return err
	}
	if n < 1 || n > MaxClaim {
		return &runledger.InvalidError{Field: "n", Reason: fmt.Sprintf("must be from 1 to %d (execution.MaxClaim)", MaxClaim)}
	}
	return validLease(lease)
}

func validLease(lease time.Duration) error {
	if lease < MinLease {
		return &runledger.InvalidError{Field: "lease", Reason: fmt.Sprintf("must be at least %s (execution.MinLease)", MinLease)}
	}
	return nil
}

// Claim hands up to n claimable items to worker: queued ones, and retrying
// or scheduled ones whose not_before has passed, in priority, not_before, id
// order. Each becomes running with attempt_count + 1 and a lease that ends
// after lease; the worker must Complete or Fail it, or Heartbeat to keep it,
// before then. Concurrent claimers never get the same item (SKIP LOCKED).
//
// n must be from 1 to MaxClaim and lease at least MinLease (else an
// *runledger.InvalidError, before any statement). The items are returned
// only once the claim committed. If the connection is lost after the
// statement was sent (runledger.ErrUnavailable), items may have been claimed
// without the worker hearing of it: they come back through Rescue when their
// lease expires, and calling Claim again is safe.
func (c *Client) Claim(ctx context.Context, worker string, n int, lease time.Duration) ([]Claimed, error) {
	if err := validClaim(worker, n, lease); err != nil {
		return nil, err
	}
	return c.claim(ctx, claimSQL, worker, n, lease.Milliseconds())
}

// Heartbeat extends the leases of the items worker still holds and returns
// those among them that CancelRun flagged: the worker should stop them and
// report (Complete or Fail), which cancels them. Items it no longer holds are
// reported in a *LeaseLostError (runledger.ErrLeaseLost: drop them); the
// others are extended regardless. lease must be at least MinLease.
func (c *Client) Heartbeat(ctx context.Context, worker string, ids []uuid.UUID, lease time.Duration) (cancelled []uuid.UUID, err error) {
	if err := validWorker(worker); err != nil {
		return nil, err
	}
	if err := validLease(lease); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	held := make(map[uuid.UUID]bool, len(ids))
	var flagged []uuid.UUID
	rows, err := c.query(ctx, `UPDATE item_execution ie SET lease_expires_at = now() + $3 * interval '1 millisecond', updated_by = $1, `+touched+`
		WHERE ie.id = ANY($2::uuid[]) AND ie.claimed_by = $1 AND `+heldByWorker+`
		RETURNING ie.id, ie.cancel_requested`, worker, uuidArray(ids), lease.Milliseconds())
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			id     uuid.UUID
			cancel bool
		)
		if err := rows.Scan(&id, &cancel); err != nil {
			return err
		}
		held[id] = true
		if cancel {
			flagged = append(flagged, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var lost []uuid.UUID
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		return flagged, &LeaseLostError{Worker: worker, IDs: lost}
	}
	return flagged, nil
}

// Result is a successful item.
type Result struct {
	ID      uuid.UUID       // the item execution
	Payload json.RawMessage // result_payload; nil for none
	// Attempt is the attempt being reported (Claimed.Attempt); 0 means the
	// item's current attempt. With it, a repeated report is recognised
	// exactly (see Report.Replayed), however the item went on since.
	Attempt int32
}

// Report tells what a Complete or Fail call did. Every item of the call is
// in exactly one list, or in the *LeaseLostError returned with the Report.
// A Report comes back only with a nil error or a *LeaseLostError: with any
// other error it is empty and nothing is known to be applied (retrying the
// same call is safe).
type Report struct {
	Succeeded, Retrying, Failed, Cancelled []uuid.UUID
	// Replayed lists items whose report this call repeats: this worker had
	// already reported the same attempt the same way (succeeded or cancelled
	// for Complete; retrying, failed or cancelled for Fail), typically in a
	// call whose answer was lost. Nothing was changed for them; the earlier
	// report stands.
	Replayed []uuid.UUID
}

func (r *Report) add(id uuid.UUID, status runledger.ExecutionStatus) {
	switch status {
	case runledger.StatusSucceeded:
		r.Succeeded = append(r.Succeeded, id)
	case runledger.StatusRetrying:
		r.Retrying = append(r.Retrying, id)
	case runledger.StatusCancelled:
		r.Cancelled = append(r.Cancelled, id)
	default:
		r.Failed = append(r.Failed, id)
	}
}

// touched sets what the guard trigger would (runledger_guard_status:
// version + 1, updated_at = now()) in the statement itself: the trigger's
// WHEN clause then skips the PL/pgSQL call for rows whose status changes
// legally (migration 20261206131500_guard_when.sql). Every hot-path UPDATE of
// item_execution ends its SET list with it.
const touched = `version = ie.version + 1, updated_at = now()`

// heldByWorker: the item is running under an unexpired lease. The status
// test is written so that no status or lease index can serve it
// ((status || ”)): the planner must reach the reported items through the
// primary key instead of scanning every running item when its statistics
// still say that few are running.
const heldByWorker = `(ie.status || '') = 'running' AND ie.lease_expires_at > now()`

// The report statements take the items' ids as a uuid[] ($2, for the
// primary-key lookup) and everything else as one jsonb object keyed by id
// ($3): each updated row reads its own entry with $3 -> id, a binary search
// in the object. A join to unnest()ed arrays would, under the generic plan
// of the prepared statement, compare every row with every row.
//
// Entry keys: "a" the attempt (absent or 0: the current one), "p" the result
// payload, "m" the error message, "f" true for a non-retryable failure.
const attemptMatches = `coalesce(nullif(($3::jsonb -> (ie.id)::text ->> 'a')::int4, 0), ie.attempt_count) = ie.attempt_count`

const completeSQL = `
UPDATE item_execution ie SET
	status = CASE WHEN ie.cancel_requested THEN 'cancelled' ELSE 'succeeded' END,
	result_payload = CASE WHEN ie.cancel_requested THEN ie.result_payload ELSE $3::jsonb -> (ie.id)::text -> 'p' END,
	error_message = CASE WHEN ie.cancel_requested THEN 'cancelled: ' || coalesce((SELECT cancellation_reason FROM run WHERE id = ie.run_id), '') ELSE NULL END,
	finished_at = now(),
	lease_expires_at = NULL,
	updated_by = $1,
	` + touched + `
WHERE ie.id = ANY($2::uuid[]) AND ie.claimed_by = $1 AND ` + heldByWorker + ` AND ` + attemptMatches + `
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Complete reports items as succeeded (or, if their run was cancelled
// meanwhile, cancelled), with their result payloads, in one statement. Only
// the worker that holds an unexpired lease on an item's attempt may report
// it. An item this worker already reported for the same attempt is listed in
// Report.Replayed (reports are idempotent, keyed by item and attempt); the
// others it does not hold are left untouched and returned in a
// *LeaseLostError, while the valid ones are applied.
//
// The Report is built only once the change committed. If the connection is
// lost after the statement was sent (runledger.ErrUnavailable) the outcome
// is unknown: call Complete again with the same results.
func (c *Client) Complete(ctx context.Context, worker string, results []Result) (Report, error) {
	if err := validWorker(worker); err != nil {
		return Report{}, err
	}
	if len(results) == 0 {
		return Report{}, nil
	}
	ids := make([]uuid.UUID, len(results))
	attempts := make([]int32, len(results))
	seen := make(map[uuid.UUID]bool, len(results))
	var obj bytes.Buffer
	obj.WriteByte('{')
	for i, r := range results {
		if seen[r.ID] {
			return Report{}, &runledger.InvalidError{Field: "result " + r.ID.String(), Reason: "listed more than once"}
		}
		seen[r.ID] = true
		if r.Attempt < 0 {
			return Report{}, &runledger.InvalidError{Field: "result " + r.ID.String() + ": attempt", Reason: "must be >= 0"}
		}
		ids[i], attempts[i] = r.ID, r.Attempt
		entry(&obj, i, r.ID, r.Attempt)
		if len(r.Payload) > 0 {
			if err := payload.CheckRaw(func() string { return "result " + r.ID.String() }, r.Payload); err != nil {
				return Report{}, err
			}
			obj.WriteString(`,"p":`)
			obj.Write(r.Payload)
		}
		obj.WriteByte('}')
	}
	obj.WriteByte('}')
	return c.report(ctx, worker, ids, attempts, completeStatuses, completeSQL, uuidArray(ids), obj.String())
}

// entry opens the jsonb entry of item id: `"id":{"a":attempt`.
func entry(obj *bytes.Buffer, i int, id uuid.UUID, attempt int32) {
	if i > 0 {
		obj.WriteByte(',')
	}
	obj.WriteString(`"` + id.String() + `":{"a":` + strconv.Itoa(int(attempt)))
}

// Failure is a failed item.
type Failure struct {
	ID           uuid.UUID // the item execution
	Error        string    // recorded in error_message
	NonRetryable bool      // fail for good, whatever attempts remain
	// Attempt is the attempt being reported (Claimed.Attempt); 0 means the
	// item's current attempt. See Result.Attempt.
	Attempt int32
}

const retriable = `NOT coalesce(($3::jsonb -> (ie.id)::text ->> 'f')::boolean, false) AND ie.retryable AND (ie.max_attempts IS NULL OR ie.attempt_count < ie.max_attempts)`

const failSQL = `
UPDATE item_execution ie SET
	status = CASE
		WHEN ie.cancel_requested THEN 'cancelled'
		WHEN ` + retriable + ` THEN 'retrying'
		ELSE 'failed' END,
	retryable = ie.retryable AND NOT coalesce(($3::jsonb -> (ie.id)::text ->> 'f')::boolean, false),
	error_message = $3::jsonb -> (ie.id)::text ->> 'm',
	not_before = now() + least($4::float8, $5::float8 * power(2, greatest(ie.attempt_count - 1, 0))) * (1 + $6::float8 * random()) * interval '1 millisecond',
	finished_at = CASE
		WHEN ie.cancel_requested THEN now()
		WHEN ` + retriable + ` THEN NULL
		ELSE now() END,
	lease_expires_at = NULL,
	updated_by = $1,
	` + touched + `
WHERE ie.id = ANY($2::uuid[]) AND ie.claimed_by = $1 AND ` + heldByWorker + ` AND ` + attemptMatches + `
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Fail reports failed items in one statement. An item with attempts left
// (attempt_count < max_attempts, or no maximum) that the failure does not
// mark NonRetryable goes to retrying, claimable again after an exponential
// backoff (Options.RetryBase doubling per attempt, capped at RetryMax, with
// jitter); the others go to failed. The lease, replay and outcome rules are
// those of Complete.
func (c *Client) Fail(ctx context.Context, worker string, failures []Failure) (Report, error) {
	if err := validWorker(worker); err != nil {
		return Report{}, err
	}
	if len(failures) == 0 {
		return Report{}, nil
	}
	ids := make([]uuid.UUID, len(failures))
	attempts := make([]int32, len(failures))
	seen := make(map[uuid.UUID]bool, len(failures))
	var obj bytes.Buffer
	obj.WriteByte('{')
	for i, f := range failures {
		if seen[f.ID] {
			return Report{}, &runledger.InvalidError{Field: "failure " + f.ID.String(), Reason: "listed more than once"}
		}
		seen[f.ID] = true
		if f.Attempt < 0 {
			return Report{}, &runledger.InvalidError{Field: "failure " + f.ID.String() + ": attempt", Reason: "must be >= 0"}
		}
		if !utf8.ValidString(f.Error) || strings.ContainsRune(f.Error, 0) {
			return Report{}, &runledger.InvalidError{Field: "failure " + f.ID.String() + ": error", Reason: "must be valid UTF-8 without NUL characters"}
		}
		ids[i], attempts[i] = f.ID, f.Attempt
		entry(&obj, i, f.ID, f.Attempt)
		msg, _ := json.Marshal(f.Error) // a string always marshals
		obj.WriteString(`,"m":`)
		obj.Write(msg)
		if f.NonRetryable {
			obj.WriteString(`,"f":true`)
		}
		obj.WriteByte('}')
	}
	obj.WriteByte('}')
	return c.report(ctx, worker, ids, attempts, failStatuses, failSQL, uuidArray(ids), obj.String(),
		float64(c.opts.RetryMax.Milliseconds()), float64(c.opts.RetryBase.Milliseconds()), c.opts.RetryJitter)
}

// The statements an item may have left running for by Complete, by Fail.
var (
	completeStatuses = pq.Array([]string{"succeeded", "cancelled"})
	failStatuses     = pq.Array([]string{"retrying", "failed", "cancelled"})
)

// replayedSQL finds, among items a report did not apply to, those that this
// worker ($1) already took out of running, the same way ($4), for the
// reported attempt ($3; 0 for the item's current one): the n-th 'running'
// history entry starts attempt n, and the entry after it ends it.
const replayedSQL = `
SELECT r.id, ie.batch_execution_id
FROM unnest($2::uuid[], $3::int4[]) AS r(id, attempt)
JOIN item_execution ie ON ie.id = r.id
WHERE EXISTS (
	SELECT 1 FROM (
		SELECT h.previous_status, h.new_status, h.created_by,
			count(*) FILTER (WHERE h.new_status = 'running') OVER (ORDER BY h.changed_at, h.id) AS attempt
		FROM item_state_history h
		WHERE h.item_execution_id = ie.id) x
	WHERE x.previous_status = 'running' AND x.created_by = $1 AND x.new_status = ANY($4::text[])
		AND x.attempt = CASE WHEN r.attempt = 0 THEN ie.attempt_count ELSE r.attempt END)`

// report runs a report statement and builds the Report from its rows once
// the statement and its commit succeeded. Items it did not apply to are
// either replays of a report already applied (Report.Replayed) or lost
// (*LeaseLostError). The roll-up of what finished follows; its failure is
// logged, not returned: the report committed, and Rescue's sweep finishes
// the roll-up.
func (c *Client) report(ctx context.Context, worker string, ids []uuid.UUID, attempts []int32, statuses any, query string, args ...any) (Report, error) {
	type row struct {
		id, be uuid.UUID
		status runledger.ExecutionStatus
	}
	var got []row
	rows, err := c.query(ctx, query, append([]any{worker}, args...)...)
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var r row
		if err := rows.Scan(&r.id, &r.be, &r.status); err != nil {
			return err
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		return Report{}, outcomeUnknown("report", err)
	}
	// Committed: from here on nothing turns the report into an error but a
	// failure to learn what happened to the items it did not apply to.
	var rep Report
	applied := make(map[uuid.UUID]bool, len(got))
	var bes []uuid.UUID
	for _, r := range got {
		applied[r.id] = true
		rep.add(r.id, r.status)
		if r.status.Terminal() {
			bes = append(bes, r.be)
		}
	}
	var missing []uuid.UUID
	var missingAttempts []int32
	for i, id := range ids {
		if !applied[id] {
			missing = append(missing, id)
			missingAttempts = append(missingAttempts, attempts[i])
		}
	}
	var lost []uuid.UUID
	if len(missing) > 0 {
		replayed := make(map[uuid.UUID]bool)
		rows, err := c.sql.QueryContext(ctx, replayedSQL, worker, uuidArray(missing), pq.Array(missingAttempts), statuses)
		err = each(ctx, rows, err, func(rows *sql.Rows) error {
			var id, be uuid.UUID
			if err := rows.Scan(&id, &be); err != nil {
				return err
			}
			replayed[id] = true
			bes = append(bes, be)
			return nil
		})
		if err != nil {
			c.rollupLogged(ctx, bes)
			return Report{}, fmt.Errorf("execution: %d item(s) applied, but what happened to the other %d is unknown (retrying the same call is safe): %w", len(got), len(missing), err)
		}
		for _, id := range missing {
			if replayed[id] {
				rep.Replayed = append(rep.Replayed, id)
			} else {
				lost = append(lost, id)
			}
		}
	}
	c.rollupLogged(ctx, bes)
	if len(lost) > 0 {
		return rep, &LeaseLostError{Worker: worker, IDs: lost}
	}
	return rep, nil
}

// outcomeUnknown says so on an error that lost the connection: the
// statement may have committed.
func outcomeUnknown(what string, err error) error {
	if !errors.Is(err, runledger.ErrUnavailable) {
		return err
	}
	if what == "claim" {
		return fmt.Errorf("execution: claim: outcome unknown (items may have been claimed: they come back through Rescue when their lease expires; claiming again is safe): %w", err)
	}
	return fmt.Errorf("execution: %s: outcome unknown (the change may have committed: retrying the same call is safe): %w", what, err)
}

// rollupLogged rolls up after a committed change; a failure is logged, as the
// change stands and Rescue's sweep finishes the roll-up.
func (c *Client) rollupLogged(ctx context.Context, batchExecutions []uuid.UUID) {
	if err := c.rollup(ctx, distinct(batchExecutions)); err != nil {
		c.opts.Logger.WarnContext(ctx, "execution: roll-up failed after a committed change; Rescue's sweep will finish it",
			"batch_executions", len(batchExecutions), "error", err)
	}
}

// RescueResult tells what Rescue did.
type RescueResult struct {
	Retrying, TimedOut, Cancelled int
}

const rescueSQL = `
UPDATE item_execution ie SET
	status = CASE
		WHEN ie.cancel_requested THEN 'cancelled'
		WHEN ie.retryable AND (ie.max_attempts IS NULL OR ie.attempt_count < ie.max_attempts) THEN 'retrying'
		ELSE 'timed_out' END,
	error_message = 'lease expired: worker ' || coalesce(ie.claimed_by, '?') || ' stopped reporting',
	not_before = now() + least($2::float8, $3::float8 * power(2, greatest(ie.attempt_count - 1, 0))) * (1 + $4::float8 * random()) * interval '1 millisecond',
	finished_at = CASE
		WHEN NOT ie.cancel_requested AND ie.retryable AND (ie.max_attempts IS NULL OR ie.attempt_count < ie.max_attempts) THEN NULL
		ELSE now() END,
	lease_expires_at = NULL,
	updated_by = 'runledger:rescue',
	` + touched + `
WHERE ie.id = ANY (ARRAY(
	SELECT id FROM item_execution
	WHERE status = 'running' AND lease_expires_at < now()
	ORDER BY lease_expires_at
	LIMIT $1
	FOR NO KEY UPDATE SKIP LOCKED))
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Rescue takes back items whose lease expired (their worker died or hung):
// they go to retrying when attempts remain, else to timed_out (or cancelled
// if their run was cancelled). It works in batches of 10,000 rows and
// returns when none is left; on an error, the result counts the batches
// that committed. It also finishes batch executions and runs
// whose roll-up was lost to a process that died right after reporting. Run
// it periodically (River's rescuer, UiPath's abandoned items).
func (c *Client) Rescue(ctx context.Context) (RescueResult, error) {
	const batch = 10000
	var res RescueResult
	for {
		var (
			bes      []uuid.UUID
			statuses []runledger.ExecutionStatus
		)
		rows, err := c.query(ctx, rescueSQL, batch,
			float64(c.opts.RetryMax.Milliseconds()), float64(c.opts.RetryBase.Milliseconds()), c.opts.RetryJitter)
		err = each(ctx, rows, err, func(rows *sql.Rows) error {
			var (
				id, be uuid.UUID
				status runledger.ExecutionStatus
			)
			if err := rows.Scan(&id, &be, &status); err != nil {
				return err
			}
			bes = append(bes, be)
			statuses = append(statuses, status)
			return nil
		})
		if err != nil {
			return res, err // res counts the batches that committed
		}
		n := len(statuses)
		for _, st := range statuses {
			switch st {
			case runledger.StatusRetrying:
				res.Retrying++
			case runledger.StatusCancelled:
				res.Cancelled++
			default:
				res.TimedOut++
			}
		}
		c.rollupLogged(ctx, bes)
		if n < batch {
			return res, c.sweep(ctx)
		}
	}
}
