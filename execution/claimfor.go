package execution

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
)

// claimStatement builds the claim statement around picked, a CTE body that
// selects the ids to claim (at most $2 of them) and locks them with
// FOR NO KEY UPDATE SKIP LOCKED. The rest is shared by Claim and ClaimFor:
// the picked items become running with attempt_count + 1 under a lease, and
// their batch executions and runs start if they were not running yet, in one
// statement. Rows that are already running are filtered out before any lock;
// the rest are locked in id order with FOR NO KEY UPDATE, which does not
// conflict with the KEY SHARE locks that foreign-key checks of concurrent
// status_count inserts take: two claimers starting the same batch executions
// never deadlock.
//
// The statement is prepared once (see Client.prepared), so its plan must be
// good for any batch size without knowing it: rows are reached through
// primary keys (= ANY (ARRAY(...)), LATERAL lookups), never through a hash
// join that a generic plan would build over whole tables. The automations'
// names are read once per statement, for the distinct automations claimed.
func claimStatement(picked string) string {
	return `
WITH picked AS (` + picked + `
), claimed AS (
	UPDATE item_execution ie SET
		status = 'running',
		attempt_count = ie.attempt_count + 1,
		started_at = coalesce(ie.started_at, now()),
		finished_at = NULL,
		lease_expires_at = now() + $3 * interval '1 millisecond',
		claimed_by = $1,
		updated_by = $1,
		` + touched + `
	WHERE ie.id = ANY (ARRAY(SELECT id FROM picked))
	RETURNING ie.id, ie.run_id, ie.batch_execution_id, ie.item_id, ie.automation_id,
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
), names AS (
	SELECT id, name FROM automation WHERE id = ANY (ARRAY(SELECT DISTINCT automation_id FROM claimed))
)
SELECT c.id, c.run_id, c.batch_execution_id, c.item_id, i.sequence_number, i.payload,
	c.attempt_count, c.max_attempts, c.lease_expires_at, c.automation_id, coalesce(a.name, '')
FROM claimed c
CROSS JOIN LATERAL (SELECT sequence_number, payload FROM item WHERE id = c.item_id) i
LEFT JOIN names a ON a.id = c.automation_id`
}

// claimSQL takes up to $2 claimable items of any automation in claim order.
// The WHERE and ORDER BY are exactly those of the partial index
// ix_item_execution_claim.
var claimSQL = claimStatement(`
	SELECT id FROM item_execution
	WHERE (status)::text = ANY ('{queued,retrying,scheduled}'::text[]) AND not_before <= now()
	ORDER BY priority, not_before, id
	LIMIT $2
	FOR NO KEY UPDATE SKIP LOCKED`)

// claimForSQL takes up to $2 claimable items of the automations named $4 or
// with ids $5. The names are resolved to ids once per statement; then, per
// automation, the first $2 claimable items in claim order come from the
// partial index ix_item_execution_claim_automation (whose WHERE and ORDER BY
// these are), so the cost does not depend on other automations' backlogs;
// the first $2 of those in claim order are claimed. With several
// automations, up to $2 rows per automation are locked for the statement
// and the ones not taken are released at its end.
//
// The automation is matched as a range of one value, not with =, on
// purpose: the planner cannot know how many items the automation has (it
// comes from a parameter), and with = it drops automation_id from the
// ORDER BY and may walk ix_item_execution_claim, in the same order, past
// every other automation's claimable rows (seen with two automations, one
// with a large backlog). With the range, automation_id stays the first sort
// key, which only ix_item_execution_claim_automation provides.
var claimForSQL = claimStatement(`
	SELECT p.id FROM unnest(ARRAY(
		SELECT id FROM automation WHERE name = ANY ($4::text[])
		UNION
		SELECT unnest($5::uuid[]))) AS s(id)
	CROSS JOIN LATERAL (
		SELECT ie.id, ie.priority, ie.not_before FROM item_execution ie
		WHERE ie.automation_id >= s.id AND ie.automation_id <= s.id
			AND (ie.status)::text = ANY ('{queued,retrying,scheduled}'::text[]) AND ie.not_before <= now()
		ORDER BY ie.automation_id, ie.priority, ie.not_before, ie.id
		LIMIT $2
		FOR NO KEY UPDATE OF ie SKIP LOCKED) p
	ORDER BY p.priority, p.not_before, p.id
	LIMIT $2`)

// ClaimOptions scope ClaimFor to automations: those named in Automations
// and those in AutomationIDs (at least one of the two must be given). Every
// automation of a given name counts, active or not: items of a run still
// need a worker after their automation was deactivated.
type ClaimOptions struct {
	Automations   []string
	AutomationIDs []uuid.UUID
}

// ClaimFor is Claim restricted to the items of some automations: a worker
// that only knows how to process those never gets another automation's
// items, and the claim's cost does not grow with other automations'
// backlogs (it reads ix_item_execution_claim_automation, one index range per
// automation). Unknown names or ids claim nothing. The rules of Claim apply
// otherwise.
func (c *Client) ClaimFor(ctx context.Context, worker string, n int, lease time.Duration, opts ClaimOptions) ([]Claimed, error) {
	if err := validClaim(worker, n, lease); err != nil {
		return nil, err
	}
	if len(opts.Automations) == 0 && len(opts.AutomationIDs) == 0 {
		return nil, &runledger.InvalidError{Field: "ClaimOptions", Reason: "name at least one automation (Automations or AutomationIDs); Claim takes items of any automation"}
	}
	names := opts.Automations
	if names == nil {
		names = []string{}
	}
	return c.claim(ctx, claimForSQL, worker, n, lease.Milliseconds(), pq.Array(names), uuidArray(opts.AutomationIDs))
}

// claim runs a claim statement and reads the claimed items.
func (c *Client) claim(ctx context.Context, query string, args ...any) ([]Claimed, error) {
	var out []Claimed // grows with the rows that arrive, never with n
	rows, err := c.query(ctx, query, args...)
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			cl      Claimed
			payload []byte
			max     sql.NullInt32
		)
		if err := rows.Scan(&cl.ID, &cl.RunID, &cl.BatchExecutionID, &cl.ItemID, &cl.SequenceNumber, &payload,
			&cl.Attempt, &max, &cl.LeaseExpiresAt, &cl.AutomationID, &cl.AutomationName); err != nil {
			return err
		}
		if len(payload) > 0 {
			cl.Payload = payload
		}
		if max.Valid {
			cl.MaxAttempts = &max.Int32
		}
		out = append(out, cl)
		return nil
	})
	if err != nil {
		return nil, outcomeUnknown("claim", err)
	}
	return out, nil
}
