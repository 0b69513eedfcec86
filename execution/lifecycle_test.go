package execution_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent/item"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/execution"
)

func TestRescueAndStaleWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond}, 2)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 2})
	require.NoError(t, err)

	got, err := b.exec.Claim(ctx, "doomed", 2, execution.MinLease)
	require.NoError(t, err)
	require.Len(t, got, 2)
	// Another worker cannot report on them.
	_, err = b.exec.Complete(ctx, "intruder", []execution.Result{{ID: got[0].ID}})
	var swe *execution.LeaseLostError
	require.ErrorAs(t, err, &swe)
	require.ErrorIs(t, err, runledger.ErrLeaseLost)
	require.NotErrorIs(t, err, runledger.ErrStale, "lease lost is not a retryable conflict")
	require.NotErrorIs(t, err, runledger.ErrTransient)
	require.Equal(t, []uuid.UUID{got[0].ID}, swe.IDs)

	expireLeases(t, b, got[0].ID, got[1].ID) // the worker dies: its lease runs out
	res, err := b.exec.Rescue(ctx)
	require.NoError(t, err)
	require.Equal(t, execution.RescueResult{Retrying: 2}, res)

	// The dead worker's late report is refused and changes nothing.
	_, err = b.exec.Complete(ctx, "doomed", []execution.Result{{ID: got[0].ID, Payload: json.RawMessage(`{"late":true}`)}})
	require.ErrorAs(t, err, &swe)
	_, err = b.exec.Heartbeat(ctx, "doomed", []uuid.UUID{got[1].ID}, time.Minute)
	require.ErrorAs(t, err, &swe)
	ie, err := b.db.ItemExecution.Get(ctx, got[0].ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusRetrying, ie.Status)
	require.Nil(t, ie.ResultPayload)
	require.Contains(t, *ie.ErrorMessage, "lease expired")

	// Second and last attempt dies too: timed_out, and the run rolls up.
	time.Sleep(5 * time.Millisecond)
	got, err = b.exec.Claim(ctx, "doomed-again", 2, execution.MinLease)
	require.NoError(t, err)
	require.Len(t, got, 2)
	expireLeases(t, b, got[0].ID, got[1].ID)
	res, err = b.exec.Rescue(ctx)
	require.NoError(t, err)
	require.Equal(t, execution.RescueResult{TimedOut: 2}, res)
	r, err := b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusFailed, r.Status)
	require.Contains(t, *r.ErrorSummary, "2 timed out")
}

func TestHeartbeatKeepsLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 1)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 1, execution.MinLease)
	require.NoError(t, err)
	cancelled, err := b.exec.Heartbeat(ctx, "w", []uuid.UUID{got[0].ID}, time.Minute)
	require.NoError(t, err)
	require.Empty(t, cancelled)
	var left time.Duration
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT (extract(epoch FROM lease_expires_at - now()) * 1e9)::bigint FROM item_execution WHERE id = $1`, got[0].ID).Scan(&left))
	require.Greater(t, left, 50*time.Second, "the lease was extended to a minute")
	res, err := b.exec.Rescue(ctx)
	require.NoError(t, err)
	require.Zero(t, res, "a heartbeating worker keeps its item")
	rep, err := b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}})
	require.NoError(t, err)
	require.Len(t, rep.Succeeded, 1)
}

func TestRetryBackoffAndMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: 300 * time.Millisecond, RetryMax: time.Second, RetryJitter: 0.01}, 2)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 2})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 2, time.Minute)
	require.NoError(t, err)
	rep, err := b.exec.Fail(ctx, "w", []execution.Failure{
		{ID: got[0].ID, Error: "transient"},
		{ID: got[1].ID, Error: "bad input", NonRetryable: true},
	})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[0].ID}, rep.Retrying)
	require.Equal(t, []uuid.UUID{got[1].ID}, rep.Failed, "a non-retryable failure fails at once")

	ie, err := b.db.ItemExecution.Get(ctx, got[0].ID)
	require.NoError(t, err)
	// The backoff is measured on the database's clock (not_before against the
	// failing statement's updated_at), so a loaded machine cannot skew it.
	backoff := ie.NotBefore.Sub(ie.UpdatedAt)
	require.Greater(t, backoff, 250*time.Millisecond, "backoff of about RetryBase")
	require.Less(t, backoff, 350*time.Millisecond)
	if time.Until(ie.NotBefore) > 150*time.Millisecond {
		none, err := b.exec.Claim(ctx, "w", 2, time.Minute)
		require.NoError(t, err)
		require.Empty(t, none, "not claimable during the backoff")
	}

	time.Sleep(time.Until(ie.NotBefore) + 20*time.Millisecond)
	again, err := b.exec.Claim(ctx, "w", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.EqualValues(t, 2, again[0].Attempt)
	rep, err = b.exec.Fail(ctx, "w", []execution.Failure{{ID: again[0].ID, Error: "still transient"}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{again[0].ID}, rep.Failed, "no attempts left")
	ie, err = b.db.ItemExecution.Get(ctx, again[0].ID)
	require.NoError(t, err)
	require.Equal(t, "still transient", *ie.ErrorMessage)
	require.NotNil(t, ie.FinishedAt)
	hist, err := b.db.ItemStateHistory.Query().Where(itemstatehistory.ItemExecutionID(ie.ID)).Order(itemstatehistory.ByChangedAt()).All(ctx)
	require.NoError(t, err)
	var steps []string
	for _, h := range hist {
		steps = append(steps, string(h.NewStatus))
	}
	require.Equal(t, "queued running retrying running failed", strings.Join(steps, " "))
}

func TestCancelDuringWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 5)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 2, time.Minute)
	require.NoError(t, err)

	res, err := b.exec.CancelRun(runledger.WithActor(ctx, "operator"), run.ID, "wrong input file")
	require.NoError(t, err)
	require.Equal(t, execution.CancelResult{Cancelled: 3, Flagged: 2}, res)
	more, err := b.exec.Claim(ctx, "w2", 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, more, "cancelled items are not claimable")

	cancelled, err := b.exec.Heartbeat(ctx, "w", []uuid.UUID{got[0].ID, got[1].ID}, time.Minute)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{got[0].ID, got[1].ID}, cancelled, "the worker hears of the cancel")
	r, err := b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.False(t, r.Status.Terminal(), "running items are still running")

	rep, err := b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[0].ID}, rep.Cancelled)
	rep, err = b.exec.Fail(ctx, "w", []execution.Failure{{ID: got[1].ID, Error: "stopped"}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[1].ID}, rep.Cancelled)

	r, err = b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusCancelled, r.Status)
	require.Equal(t, "wrong input file", *r.CancellationReason)
	n, err := b.db.ItemExecution.Query().Where(itemexecution.RunID(run.ID), itemexecution.StatusEQ(runledger.StatusCancelled)).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	again, err := b.exec.CancelRun(ctx, run.ID, "again")
	require.NoError(t, err, "cancelling twice is not an error")
	require.Equal(t, execution.CancelResult{AlreadyCancelled: true}, again)
	r, err = b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, "wrong input file", *r.CancellationReason, "the first reason stands")
	_, err = b.exec.CancelRun(ctx, uuid.New(), "nothing")
	require.ErrorIs(t, err, runledger.ErrNotFound)
}

func TestStartRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 3, 0, 2)

	t.Run("named batches, priority, correlation", func(t *testing.T) {
		t.Parallel()
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{
			Batches: []uuid.UUID{b.batches[0].ID}, CorrelationID: "order-7", Priority: 5, MaxAttempts: 4})
		require.NoError(t, err)
		require.Equal(t, "order-7", *run.CorrelationID)
		ies, err := b.db.ItemExecution.Query().Where(itemexecution.RunID(run.ID)).All(ctx)
		require.NoError(t, err)
		require.Len(t, ies, 3)
		for _, ie := range ies {
			require.EqualValues(t, 5, ie.Priority)
			require.EqualValues(t, 4, *ie.MaxAttempts)
			require.Equal(t, runledger.StatusQueued, ie.Status)
		}
	})
	t.Run("empty batch finishes at once", func(t *testing.T) {
		t.Parallel()
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{Batches: []uuid.UUID{b.batches[1].ID}})
		require.NoError(t, err)
		require.Equal(t, runledger.StatusSucceeded, run.Status)
	})
	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		_, err := b.exec.StartRun(ctx, uuid.New(), execution.StartOptions{})
		require.ErrorIs(t, err, runledger.ErrNotFound)
		_, err = b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{Batches: []uuid.UUID{uuid.New()}})
		require.ErrorIs(t, err, runledger.ErrInvalid)
		other, err := b.db.Automation.Create().SetName("retired-" + uuid.NewString()[:6]).Save(ctx)
		require.NoError(t, err)
		require.NoError(t, b.db.Automation.DeleteOne(other).Exec(ctx))
		_, err = b.exec.StartRun(ctx, other.ID, execution.StartOptions{})
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Contains(t, ie.Reason, "inactive")
	})
}

// TestProgressReadsUncompactedLedger: Progress is right however many
// status_count rows a run has, and writes nothing (it must work on a
// standby); CompactProgress folds them, and Progress says the same after.
func TestProgressReadsUncompactedLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 700)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	// One item per statement: 700 claims and 600 completions pile up ledger rows.
	for i := range 700 {
		got, err := b.exec.Claim(ctx, "w", 1, time.Minute)
		require.NoError(t, err)
		require.Len(t, got, 1)
		if i < 600 {
			_, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}})
			require.NoError(t, err)
		}
	}
	ledger := func() int {
		var n int
		require.NoError(t, b.db.SQL().QueryRow(`SELECT count(*) FROM status_count WHERE run_id = $1`, run.ID).Scan(&n))
		return n
	}
	before := ledger()
	require.Greater(t, before, 512)
	p, err := b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	requireProgressMatchesCount(t, b, run.ID, p)
	require.Nil(t, p.Staleness, "read from the primary pool")
	require.Equal(t, before, ledger(), "Progress writes nothing")

	require.NoError(t, b.exec.CompactProgress(ctx))
	require.LessOrEqual(t, ledger(), 3, "compacted to one row per status")
	p2, err := b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, p.Counts, p2.Counts)
	require.EqualValues(t, 600, p2.Counts[runledger.StatusSucceeded])
	require.EqualValues(t, 100, p2.Counts[runledger.StatusRunning])
	require.NoError(t, b.exec.CompactProgress(ctx), "nothing left to compact")
}

func TestPayloadValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 1)
	bt := b.batches[0]

	t.Run("AddItems names the item and the pointer, adds nothing", func(t *testing.T) {
		t.Parallel()
		_, err := b.exec.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{
			{SequenceNumber: 10, Payload: json.RawMessage(`{"n": 1}`)},
			{SequenceNumber: 11, Payload: json.RawMessage(`{"n": "eleven"}`)},
		}))
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "item 11: /n", ie.Field)
		n, err := b.db.Item.Query().Where(item.SequenceNumberIn(10, 11)).Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "the valid item before it was not added either")
	})
	t.Run("duplicate sequence numbers conflict", func(t *testing.T) {
		t.Parallel()
		_, err := b.exec.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0, Payload: json.RawMessage(`{"n":0}`)}}))
		require.ErrorIs(t, err, runledger.ErrConflict)
	})
	t.Run("the client validates too", func(t *testing.T) {
		t.Parallel()
		_, err := b.db.Item.Create().SetBatch(bt).SetSequenceNumber(50).SetPayload(map[string]any{"m": 1}).Save(ctx)
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "item 50: /", ie.Field)
		require.Contains(t, ie.Reason, "n")
		_, err = b.db.Item.Create().SetBatch(bt).SetSequenceNumber(51).SetPayload(map[string]any{"n": 1}).Save(ctx)
		require.NoError(t, err)
	})
	t.Run("an invalid schema is refused when saved", func(t *testing.T) {
		t.Parallel()
		_, err := b.db.Automation.Create().SetName("bad-schema-" + uuid.NewString()[:6]).
			SetItemSchema(map[string]any{"type": "no-such-type"}).Save(ctx)
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "item_schema", ie.Field)
	})
	t.Run("batch payloads against batch_schema", func(t *testing.T) {
		t.Parallel()
		a, err := b.db.Automation.Create().SetName("batchy-" + uuid.NewString()[:6]).
			SetBatchSchema(map[string]any{"type": "object", "required": []any{"source"}}).Save(ctx)
		require.NoError(t, err)
		_, err = b.db.Batch.Create().SetAutomation(a).SetName("x").SetPayload(map[string]any{}).Save(ctx)
		require.ErrorIs(t, err, runledger.ErrInvalid)
		_, err = b.db.Batch.Create().SetAutomation(a).SetName("y").SetPayload(map[string]any{"source": "s3"}).Save(ctx)
		require.NoError(t, err)
	})
}

// TestSweepFinishesLostRollup: a process that dies between reporting its
// items and rolling them up leaves the batch execution and run unfinished;
// Rescue's sweep finishes them.
func TestSweepFinishesLostRollup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	// Report the items behind the API's back, as a crashed worker would leave them.
	_, err = b.db.SQL().ExecContext(ctx, `UPDATE item_execution SET status = 'running' WHERE run_id = $1`, run.ID)
	require.NoError(t, err)
	_, err = b.db.SQL().ExecContext(ctx, `UPDATE item_execution SET status = 'succeeded', finished_at = now() WHERE run_id = $1`, run.ID)
	require.NoError(t, err)
	r, err := b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusQueued, r.Status)

	_, err = b.exec.Rescue(ctx)
	require.NoError(t, err)
	r, err = b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusSucceeded, r.Status)
}

// TestRollupSurvivesCallerCancel: the roll-up after a report runs even when
// the caller's context ends right after the report committed.
func TestRollupSurvivesCallerCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, execution.Options{}, 1)
	run, err := b.exec.StartRun(context.Background(), b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(context.Background(), "w", 1, time.Minute)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	_, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}})
	cancel()
	require.NoError(t, err)
	r, err := b.db.Run.Get(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusSucceeded, r.Status)
}

// expireLeases ends the leases of ids now, as if their worker had stopped
// reporting for longer than its lease: no status change, so no history row.
func expireLeases(t *testing.T, b *bundle, ids ...uuid.UUID) {
	t.Helper()
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	_, err := b.db.SQL().Exec(`UPDATE item_execution SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, pq.Array(strs))
	require.NoError(t, err)
}
