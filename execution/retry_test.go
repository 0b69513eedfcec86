package execution_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// burn claims every claimable item and completes it, except items whose
// sequence number is in fail: those fail for good with an error naming them.
func burn(t *testing.T, b *bundle, fail map[int32]bool) {
	t.Helper()
	ctx := context.Background()
	for {
		got, err := b.exec.Claim(ctx, "burner", 1000, time.Minute)
		require.NoError(t, err)
		if len(got) == 0 {
			return
		}
		var ok []execution.Result
		var bad []execution.Failure
		for _, cl := range got {
			if fail[cl.SequenceNumber] {
				bad = append(bad, execution.Failure{ID: cl.ID, Error: "item failed", NonRetryable: true})
			} else {
				ok = append(ok, execution.Result{ID: cl.ID})
			}
		}
		_, err = b.exec.Complete(ctx, "burner", ok)
		require.NoError(t, err)
		_, err = b.exec.Fail(ctx, "burner", bad)
		require.NoError(t, err)
	}
}

// requireLedger checks the ledger invariants of DESIGN.md on a run with
// plain SQL: attempts = running entries in the history, the last history
// entry is the row's status, finished items have finished_at and no lease,
// batch executions and the run are finished exactly when their items are,
// and status_count agrees with the items.
func requireLedger(t *testing.T, b *bundle, runID uuid.UUID) {
	t.Helper()
	checks := map[string]string{
		"attempts": `SELECT count(*) FROM item_execution ie WHERE ie.run_id = $1 AND ie.attempt_count <>
			(SELECT count(*) FROM item_state_history h WHERE h.item_execution_id = ie.id AND h.new_status = 'running')`,
		"last history": `SELECT count(*) FROM item_execution ie WHERE ie.run_id = $1 AND ie.status <>
			(SELECT h.new_status FROM item_state_history h WHERE h.item_execution_id = ie.id ORDER BY h.changed_at DESC, h.id DESC LIMIT 1)`,
		"finished items": `SELECT count(*) FROM item_execution WHERE run_id = $1 AND
			((status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}') <> (finished_at IS NOT NULL)
			OR ((status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}') AND lease_expires_at IS NOT NULL))`,
		"batch executions": `SELECT count(*) FROM batch_execution be WHERE be.run_id = $1 AND
			(be.status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}') <> NOT EXISTS (SELECT 1 FROM item_execution ie
				WHERE ie.batch_execution_id = be.id AND NOT (ie.status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'))`,
		"run": `SELECT count(*) FROM run r WHERE r.id = $1 AND
			(r.status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}') <> NOT EXISTS (SELECT 1 FROM item_execution ie
				WHERE ie.run_id = r.id AND NOT (ie.status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'))`,
		"status_count": `SELECT count(*) FROM (
			SELECT batch_execution_id, status, count(*) AS n FROM item_execution WHERE run_id = $1 GROUP BY 1, 2) i
			FULL JOIN (SELECT batch_execution_id, status, sum(delta) AS n FROM status_count WHERE run_id = $1 GROUP BY 1, 2 HAVING sum(delta) <> 0) s
			USING (batch_execution_id, status) WHERE i.n IS DISTINCT FROM s.n`,
	}
	for name, q := range checks {
		require.Zero(t, count(t, b, q, runID), name)
	}
}

func TestRetryItems(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("failed and timed out back to queued with fresh attempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{DefaultMaxAttempts: 2}, 4, 3)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 1})
		require.NoError(t, err)
		burn(t, b, map[int32]bool{1: true})
		r, err := b.db.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, runledger.StatusFailed, r.Status)
		require.NotNil(t, r.ErrorSummary)

		// Runners of the automation are woken on commit.
		l := b.db.NewListener(nil)
		t.Cleanup(func() { _ = l.Close() })
		require.NoError(t, l.Listen("runledger_work"))
		res, err := b.exec.RetryItems(runledger.WithActor(ctx, "alice"), run.ID)
		require.NoError(t, err)
		require.Equal(t, execution.RetryResult{Items: 2, BatchExecutions: 2, Run: true}, res)
		select {
		case n := <-l.Notify:
			require.Equal(t, b.auto.ID.String(), n.Extra)
		case <-time.After(30 * time.Second):
			t.Fatal("RetryItems sent no wake-up")
		}
		requireLedger(t, b, run.ID)
		r, err = b.db.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, runledger.StatusQueued, r.Status)
		require.Nil(t, r.FinishedAt)
		require.Nil(t, r.ErrorSummary)
		page, err := b.exec.FailedItems(ctx, run.ID, execution.ItemFilter{Statuses: []runledger.ExecutionStatus{runledger.StatusQueued}})
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		for _, it := range page.Items {
			require.EqualValues(t, 1, it.AttemptCount, "attempts made are kept")
			require.EqualValues(t, 3, *it.MaxAttempts, "fresh attempts: attempt_count + DefaultMaxAttempts")
			require.Nil(t, it.FinishedAt)
			last := it.History[len(it.History)-1]
			require.Equal(t, runledger.StatusFailed, *last.From)
			require.Equal(t, runledger.StatusQueued, last.To)
			require.Equal(t, "alice", last.Actor)
		}

		// They run again; now they succeed and the run with them.
		burn(t, b, nil)
		requireLedger(t, b, run.ID)
		r, err = b.db.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, runledger.StatusSucceeded, r.Status)
		p, err := b.exec.Progress(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, execution.Counts{runledger.StatusSucceeded: 7}, p.Counts)

		// Nothing left to retry: a succeeded run stays as it is.
		res, err = b.exec.RetryItems(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, execution.RetryResult{}, res)
	})

	t.Run("cancelled only when asked; cancellation lifted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{}, 3)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		_, err = b.exec.CancelRun(ctx, run.ID, "wrong file")
		require.NoError(t, err)

		res, err := b.exec.RetryItems(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, execution.RetryResult{}, res, "cancelled items are not retried by default")

		res, err = b.exec.RetryItems(runledger.WithActor(ctx, "bob"), run.ID, runledger.StatusFailed, runledger.StatusTimedOut, runledger.StatusCancelled)
		require.NoError(t, err)
		require.Equal(t, execution.RetryResult{Items: 3, BatchExecutions: 1, Run: true}, res)
		r, err := b.db.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, runledger.StatusQueued, r.Status)
		require.Nil(t, r.CancellationReason)
		requireLedger(t, b, run.ID)
		burn(t, b, nil)
		r, err = b.db.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, runledger.StatusSucceeded, r.Status)
		requireLedger(t, b, run.ID)
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{}, 2)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		_, err = b.exec.RetryItems(ctx, run.ID)
		var te *runledger.TransitionError
		require.ErrorAs(t, err, &te, "an unfinished run is refused")
		require.Equal(t, runledger.StatusQueued, te.From)
		_, err = b.exec.RetryItems(ctx, uuid.New())
		require.ErrorIs(t, err, runledger.ErrNotFound)
		_, err = b.exec.RetryItems(ctx, run.ID, runledger.StatusSucceeded)
		require.ErrorIs(t, err, runledger.ErrInvalid)
		_, err = b.exec.RetryItems(ctx, run.ID, "bogus")
		require.ErrorIs(t, err, runledger.ErrInvalid)
	})
}
