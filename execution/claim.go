package execution

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
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
}

// claimSQL takes up to $2 claimable items in claim order with SKIP LOCKED,
// marks them running under a lease, and starts their batch executions and
// runs if they were not running yet: one statement. Rows that are already
// running are filtered out before any lock; the rest are locked in id order
// with FOR NO KEY UPDATE, which does not conflict with the KEY SHARE locks
// that foreign-key checks of concurrent status_count inserts take: two
// claimers starting the same batch executions never deadlock. The WHERE and
// ORDER BY are exactly those of the partial index ix_item_execution_claim.
//
// The statement is prepared once (see Client.prepared), so its plan must be
// good for any batch size without knowing it: rows are reached through
// primary keys (= ANY (ARRAY(...)), LATERAL lookups), never through a hash
// join that a generic plan would build over whole tables.
const claimSQL = `
WITH picked AS (
	SELECT id FROM item_execution
	WHERE (status)::text = ANY ('{queued,retrying,scheduled}'::text[]) AND not_before <= now()
	ORDER BY priority, not_before, id
	LIMIT $2
	FOR NO KEY UPDATE SKIP LOCKED
), claimed AS (
	UPDATE item_execution ie SET
		status = 'running',
		attempt_count = ie.attempt_count + 1,
		started_at = coalesce(ie.started_at, now()),
		finished_at = NULL,
		lease_expires_at = now() + $3 * interval '1 millisecond',
		claimed_by = $1,
		updated_by = $1
	WHERE ie.id = ANY (ARRAY(SELECT id FROM picked))
	RETURNING ie.id, ie.run_id, ie.batch_execution_id, ie.item_id,
		ie.attempt_count, ie.max_attempts, ie.lease_expires_at
), batches_to_start AS (
	SELECT id FROM batch_execution
	WHERE id = ANY (ARRAY(SELECT DISTINCT batch_execution_id FROM claimed))
		AND (status)::text = ANY ('{pending,queued,scheduled,retrying}'::text[])
	ORDER BY id
	FOR NO KEY UPDATE
), started_batches AS (
	UPDATE batch_execution b SET status = 'running', started_at = coalesce(b.started_at, now()), updated_by = $1
	FROM batches_to_start s WHERE b.id = s.id
), runs_to_start AS (
	SELECT id FROM run
	WHERE id = ANY (ARRAY(SELECT DISTINCT run_id FROM claimed))
		AND (status)::text = ANY ('{pending,queued,scheduled,retrying}'::text[])
	ORDER BY id
	FOR NO KEY UPDATE
), started_runs AS (
	UPDATE run r SET status = 'running', started_at = coalesce(r.started_at, now()), updated_by = $1
	FROM runs_to_start s WHERE r.id = s.id
)
SELECT c.id, c.run_id, c.batch_execution_id, c.item_id, i.sequence_number, i.payload,
	c.attempt_count, c.max_attempts, c.lease_expires_at
FROM claimed c
CROSS JOIN LATERAL (SELECT sequence_number, payload FROM item WHERE id = c.item_id) i`

// Claim hands up to n claimable items to worker: queued ones, and retrying
// or scheduled ones whose not_before has passed, in priority, not_before, id
// order. Each becomes running with attempt_count + 1 and a lease that ends
// after lease; the worker must Complete or Fail it, or Heartbeat to keep it,
// before then. Concurrent claimers never get the same item (SKIP LOCKED).
func (c *Client) Claim(ctx context.Context, worker string, n int, lease time.Duration) ([]Claimed, error) {
	if err := validWorker(worker); err != nil {
		return nil, err
	}
	if n <= 0 || lease <= 0 {
		return nil, &runledger.InvalidError{Field: "n, lease", Reason: "both must be positive"}
	}
	rows, err := c.query(ctx, claimSQL, worker, n, lease.Milliseconds())
	if err != nil {
		return nil, translate(ctx, err)
	}
	defer rows.Close()
	out := make([]Claimed, 0, n)
	for rows.Next() {
		var (
			cl      Claimed
			payload []byte
			max     sql.NullInt32
		)
		if err := rows.Scan(&cl.ID, &cl.RunID, &cl.BatchExecutionID, &cl.ItemID, &cl.SequenceNumber, &payload,
			&cl.Attempt, &max, &cl.LeaseExpiresAt); err != nil {
			return nil, translate(ctx, err)
		}
		if len(payload) > 0 {
			cl.Payload = payload
		}
		if max.Valid {
			cl.MaxAttempts = &max.Int32
		}
		out = append(out, cl)
	}
	return out, translate(ctx, rows.Err())
}

// Heartbeat extends the leases of the items worker still holds and returns
// those among them that CancelRun flagged: the worker should stop them and
// report (Complete or Fail), which cancels them. Items it no longer holds are
// reported in a *StaleWorkerError; the others are extended regardless.
func (c *Client) Heartbeat(ctx context.Context, worker string, ids []uuid.UUID, lease time.Duration) (cancelled []uuid.UUID, err error) {
	if err := validWorker(worker); err != nil {
		return nil, err
	}
	if lease <= 0 {
		return nil, &runledger.InvalidError{Field: "lease", Reason: "must be positive"}
	}
	rows, err := c.query(ctx, `UPDATE item_execution ie SET lease_expires_at = now() + $3 * interval '1 millisecond', updated_by = $1
		WHERE ie.id = ANY($2::uuid[]) AND ie.claimed_by = $1 AND `+heldByWorker+`
		RETURNING ie.id, ie.cancel_requested`, worker, uuidArray(ids), lease.Milliseconds())
	if err != nil {
		return nil, translate(ctx, err)
	}
	defer rows.Close()
	held := make(map[uuid.UUID]bool, len(ids))
	for rows.Next() {
		var (
			id     uuid.UUID
			cancel bool
		)
		if err := rows.Scan(&id, &cancel); err != nil {
			return nil, translate(ctx, err)
		}
		held[id] = true
		if cancel {
			cancelled = append(cancelled, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(ctx, err)
	}
	return cancelled, staleErr(worker, ids, held)
}

// Result is a successful item.
type Result struct {
	ID      uuid.UUID       // the item execution
	Payload json.RawMessage // result_payload; nil for none
}

// Report tells what a Complete or Fail call did to the items it applied to.
type Report struct {
	Succeeded, Retrying, Failed, Cancelled []uuid.UUID
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

// heldByWorker: the item is running under an unexpired lease. The status
// test is written so that no status or lease index can serve it
// ((status || ”)): the planner must reach the reported items through the
// primary key, 100 lookups, instead of scanning every running item when its
// statistics still say that few are running.
const heldByWorker = `(ie.status || '') = 'running' AND ie.lease_expires_at > now()`

const completeSQL = `
UPDATE item_execution ie SET
	status = CASE WHEN ie.cancel_requested THEN 'cancelled' ELSE 'succeeded' END,
	result_payload = CASE WHEN ie.cancel_requested THEN ie.result_payload ELSE r.payload END,
	error_message = CASE WHEN ie.cancel_requested THEN 'cancelled: ' || coalesce((SELECT cancellation_reason FROM run WHERE id = ie.run_id), '') ELSE NULL END,
	finished_at = now(),
	lease_expires_at = NULL,
	updated_by = $1
FROM unnest($2::uuid[], $3::jsonb[]) AS r(id, payload)
WHERE ie.id = ANY($2::uuid[]) AND ie.id = r.id AND ie.claimed_by = $1 AND ` + heldByWorker + `
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Complete reports items as succeeded (or, if their run was cancelled
// meanwhile, cancelled), with their result payloads, in one statement. Only
// the worker that holds an unexpired lease may report an item: the others
// are left untouched and returned in a *StaleWorkerError, while the valid
// ones are applied.
func (c *Client) Complete(ctx context.Context, worker string, results []Result) (Report, error) {
	if err := validWorker(worker); err != nil {
		return Report{}, err
	}
	ids := make([]uuid.UUID, len(results))
	payloads := make([]sql.NullString, len(results))
	for i, r := range results {
		ids[i] = r.ID
		if len(r.Payload) > 0 {
			if !json.Valid(r.Payload) {
				return Report{}, &runledger.InvalidError{Field: "result " + r.ID.String(), Reason: "payload is not valid JSON"}
			}
			payloads[i] = sql.NullString{String: string(r.Payload), Valid: true}
		}
	}
	return c.report(ctx, worker, ids, completeSQL, uuidArray(ids), pq.GenericArray{A: payloads})
}

// Failure is a failed item.
type Failure struct {
	ID           uuid.UUID // the item execution
	Error        string    // recorded in error_message
	NonRetryable bool      // fail for good, whatever attempts remain
}

const failSQL = `
UPDATE item_execution ie SET
	status = CASE
		WHEN ie.cancel_requested THEN 'cancelled'
		WHEN NOT f.final AND ie.retryable AND (ie.max_attempts IS NULL OR ie.attempt_count < ie.max_attempts) THEN 'retrying'
		ELSE 'failed' END,
	retryable = ie.retryable AND NOT f.final,
	error_message = f.msg,
	not_before = now() + least($4::float8, $5::float8 * power(2, greatest(ie.attempt_count - 1, 0))) * (1 + $6::float8 * random()) * interval '1 millisecond',
	finished_at = CASE
		WHEN ie.cancel_requested THEN now()
		WHEN NOT f.final AND ie.retryable AND (ie.max_attempts IS NULL OR ie.attempt_count < ie.max_attempts) THEN NULL
		ELSE now() END,
	lease_expires_at = NULL,
	updated_by = $1
FROM unnest($2::uuid[], $3::text[], $7::bool[]) AS f(id, msg, final)
WHERE ie.id = ANY($2::uuid[]) AND ie.id = f.id AND ie.claimed_by = $1 AND ` + heldByWorker + `
RETURNING ie.id, ie.batch_execution_id, ie.status`

// Fail reports failed items in one statement. An item with attempts left
// (attempt_count < max_attempts, or no maximum) that the failure does not
// mark NonRetryable goes to retrying, claimable again after an exponential
// backoff (Options.RetryBase doubling per attempt, capped at RetryMax, with
// jitter); the others go to failed. The lease rules are those of Complete.
func (c *Client) Fail(ctx context.Context, worker string, failures []Failure) (Report, error) {
	if err := validWorker(worker); err != nil {
		return Report{}, err
	}
	ids := make([]uuid.UUID, len(failures))
	msgs := make([]string, len(failures))
	final := make([]bool, len(failures))
	for i, f := range failures {
		ids[i], msgs[i], final[i] = f.ID, f.Error, f.NonRetryable
	}
	return c.report(ctx, worker, ids, failSQL, uuidArray(ids), pq.Array(msgs),
		float64(c.opts.RetryMax.Milliseconds()), float64(c.opts.RetryBase.Milliseconds()), c.opts.RetryJitter, pq.Array(final))
}

func (c *Client) report(ctx context.Context, worker string, ids []uuid.UUID, query string, args ...any) (Report, error) {
	var rep Report
	if len(ids) == 0 {
		return rep, nil
	}
	held := make(map[uuid.UUID]bool, len(ids))
	var bes []uuid.UUID
	rows, err := c.query(ctx, query, append([]any{worker}, args...)...)
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			id, be uuid.UUID
			status string
		)
		if err := rows.Scan(&id, &be, &status); err != nil {
			return err
		}
		held[id] = true
		bes = append(bes, be)
		rep.add(id, runledger.ExecutionStatus(status))
		return nil
	})
	if err != nil {
		return rep, err
	}
	if len(rep.Succeeded)+len(rep.Failed)+len(rep.Cancelled) > 0 {
		if err := c.rollup(ctx, distinct(bes)); err != nil {
			return rep, err
		}
	}
	return rep, staleErr(worker, ids, held)
}

func staleErr(worker string, ids []uuid.UUID, held map[uuid.UUID]bool) error {
	var stale []uuid.UUID
	for _, id := range ids {
		if !held[id] {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return &StaleWorkerError{Worker: worker, IDs: stale}
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
	updated_by = 'runledger:rescue'
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
// returns when none is left. It also finishes batch executions and runs
// whose roll-up was lost to a process that died right after reporting. Run
// it periodically (River's rescuer, UiPath's abandoned items).
func (c *Client) Rescue(ctx context.Context) (RescueResult, error) {
	const batch = 10000
	var res RescueResult
	for {
		var bes []uuid.UUID
		n := 0
		rows, err := c.query(ctx, rescueSQL, batch,
			float64(c.opts.RetryMax.Milliseconds()), float64(c.opts.RetryBase.Milliseconds()), c.opts.RetryJitter)
		err = each(ctx, rows, err, func(rows *sql.Rows) error {
			var (
				id, be uuid.UUID
				status string
			)
			if err := rows.Scan(&id, &be, &status); err != nil {
				return err
			}
			n++
			bes = append(bes, be)
			switch runledger.ExecutionStatus(status) {
			case runledger.StatusRetrying:
				res.Retrying++
			case runledger.StatusCancelled:
				res.Cancelled++
			default:
				res.TimedOut++
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		if err := c.rollup(ctx, distinct(bes)); err != nil {
			return res, err
		}
		if n < batch {
			return res, c.sweep(ctx)
		}
	}
}
