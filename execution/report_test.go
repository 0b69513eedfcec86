package execution_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// failCommits installs a deferred constraint trigger on item_execution that
// raises a serialization failure (40001) at commit for every row the
// statement moves to status. The statement itself succeeds and returns its
// rows; only the commit fails.
func failCommits(t *testing.T, b *bundle, status runledger.ExecutionStatus) (remove func()) {
	t.Helper()
	_, err := b.db.SQL().Exec(`
		CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected commit failure' USING ERRCODE = '40001'; END $$;
		CREATE CONSTRAINT TRIGGER test_fail_commit AFTER UPDATE ON item_execution
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
			WHEN (NEW.status = '` + string(status) + `') EXECUTE FUNCTION test_fail_commit();`)
	require.NoError(t, err)
	return func() {
		_, err := b.db.SQL().Exec(`DROP TRIGGER test_fail_commit ON item_execution; DROP FUNCTION test_fail_commit();`)
		require.NoError(t, err)
	}
}

func statusOf(t *testing.T, b *bundle, id uuid.UUID) runledger.ExecutionStatus {
	t.Helper()
	ie, err := b.db.ItemExecution.Get(context.Background(), id)
	require.NoError(t, err)
	return ie.Status
}

// Defect 1: a completion whose commit fails was reported as succeeded.
func TestReportOnlyWhatCommitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: time.Millisecond}, 3)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 3, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, 3)

	remove := failCommits(t, b, runledger.StatusSucceeded)
	rep, err := b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID, Attempt: got[0].Attempt}})
	require.ErrorIs(t, err, runledger.ErrTransient, "a failed commit is a transient error")
	require.NotErrorIs(t, err, runledger.ErrLeaseLost)
	require.Equal(t, execution.Report{}, rep, "nothing is reported that did not commit")
	require.Equal(t, runledger.StatusRunning, statusOf(t, b, got[0].ID))
	remove()

	// The same call again applies it.
	rep, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID, Attempt: got[0].Attempt}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[0].ID}, rep.Succeeded)

	remove = failCommits(t, b, runledger.StatusRetrying)
	rep, err = b.exec.Fail(ctx, "w", []execution.Failure{{ID: got[1].ID, Error: "x"}})
	require.ErrorIs(t, err, runledger.ErrTransient)
	require.Equal(t, execution.Report{}, rep)
	require.Equal(t, runledger.StatusRunning, statusOf(t, b, got[1].ID))
	remove()

	remove = failCommits(t, b, runledger.StatusRunning)
	more := setupRun(t, b)
	claimed, err := b.exec.Claim(ctx, "w2", 1, time.Minute)
	require.ErrorIs(t, err, runledger.ErrTransient)
	require.Empty(t, claimed, "no item is handed out by a claim that did not commit")
	require.Equal(t, runledger.StatusQueued, statusOf(t, b, more))
	remove()
}

// setupRun starts another run of b's automation and returns one of its
// item executions.
func setupRun(t *testing.T, b *bundle) uuid.UUID {
	t.Helper()
	run, err := b.exec.StartRun(context.Background(), b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	var id uuid.UUID
	require.NoError(t, b.db.SQL().QueryRow(`SELECT id FROM item_execution WHERE run_id = $1 LIMIT 1`, run.ID).Scan(&id))
	return id
}

// syncBuffer is a bytes.Buffer safe for a logger shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Defect 1, second half: a roll-up failing after a committed report turned
// the report into an error.
func TestRollupFailureKeepsTheReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	b := setup(t, execution.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 1)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 1, time.Minute)
	require.NoError(t, err)
	_, err = b.db.SQL().Exec(`
		CREATE FUNCTION test_no_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected roll-up failure'; END $$;
		CREATE TRIGGER test_no_rollup BEFORE UPDATE ON batch_execution
			FOR EACH ROW WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION test_no_rollup();`)
	require.NoError(t, err)

	rep, err := b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}})
	require.NoError(t, err, "the report committed: the roll-up's failure is not the caller's")
	require.Equal(t, []uuid.UUID{got[0].ID}, rep.Succeeded)
	require.Contains(t, logs.String(), "roll-up failed")
	require.NotContains(t, logs.String(), "postgres://")
	r, err := b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.False(t, r.Status.Terminal())

	_, err = b.db.SQL().Exec(`DROP TRIGGER test_no_rollup ON batch_execution`)
	require.NoError(t, err)
	_, err = b.exec.Rescue(ctx) // its sweep finishes the roll-up
	require.NoError(t, err)
	r, err = b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusSucceeded, r.Status)
}

// Defects 3 and 4: bounds are checked before any statement.
func TestClaimAndLeaseBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	for _, tt := range []struct {
		name  string
		n     int
		lease time.Duration
	}{
		{"n zero", 0, time.Minute},
		{"n negative", -1, time.Minute},
		{"n above MaxClaim", execution.MaxClaim + 1, time.Minute},
		{"n MaxInt", math.MaxInt, time.Minute},
		{"lease zero", 1, 0},
		{"lease sub-millisecond", 1, 500 * time.Microsecond},
		{"lease just under MinLease", 1, execution.MinLease - time.Millisecond},
		{"lease negative", 1, -time.Second},
	} {
		got, err := b.exec.Claim(ctx, "w", tt.n, tt.lease)
		require.ErrorIs(t, err, runledger.ErrInvalid, tt.name)
		require.Nil(t, got, tt.name)
	}
	var running int
	require.NoError(t, b.db.SQL().QueryRow(`SELECT count(*) FROM item_execution WHERE status <> 'queued'`).Scan(&running))
	require.Zero(t, running, "a refused claim touches nothing")

	got, err := b.exec.Claim(ctx, "w", execution.MaxClaim, execution.MinLease)
	require.NoError(t, err)
	require.Len(t, got, 2)
	_, err = b.exec.Heartbeat(ctx, "w", []uuid.UUID{got[0].ID}, 500*time.Microsecond)
	require.ErrorIs(t, err, runledger.ErrInvalid)
	rep, err := b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}, {ID: got[1].ID}})
	require.NoError(t, err, "a MinLease is still held when the worker reports")
	require.Len(t, rep.Succeeded, 2)

	_, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}, {ID: got[0].ID}})
	require.ErrorIs(t, err, runledger.ErrInvalid, "an item listed twice")
	_, err = b.exec.Fail(ctx, "w", []execution.Failure{{ID: got[0].ID, Attempt: -1}})
	require.ErrorIs(t, err, runledger.ErrInvalid)
	_, err = b.exec.Fail(ctx, "w", []execution.Failure{{ID: got[0].ID, Error: "bad \x00 byte"}})
	require.ErrorIs(t, err, runledger.ErrInvalid)
}

// Defect 6 and the idempotent reports: a re-sent report is answered as
// applied; only an item taken over is lease lost.
func TestReportsAreIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond}, 5)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 3})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 5, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, 5)
	ok := []execution.Result{
		{ID: got[0].ID, Attempt: got[0].Attempt, Payload: json.RawMessage(`{"a":1}`)},
		{ID: got[1].ID}, // current attempt
	}
	bad := []execution.Failure{{ID: got[2].ID, Attempt: got[2].Attempt, Error: "flaky"}}

	rep, err := b.exec.Complete(ctx, "w", ok)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{got[0].ID, got[1].ID}, rep.Succeeded)
	frep, err := b.exec.Fail(ctx, "w", bad)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[2].ID}, frep.Retrying)

	// The answers were lost: the worker sends the same calls again.
	rep, err = b.exec.Complete(ctx, "w", ok)
	require.NoError(t, err)
	require.Empty(t, rep.Succeeded)
	require.ElementsMatch(t, []uuid.UUID{got[0].ID, got[1].ID}, rep.Replayed)
	frep, err = b.exec.Fail(ctx, "w", bad)
	require.NoError(t, err)
	require.Equal(t, execution.Report{Replayed: []uuid.UUID{got[2].ID}}, frep)

	// Another worker claims the retried item: the old attempt's Fail is
	// still a replay, while its Complete (not what was reported) is lost.
	time.Sleep(5 * time.Millisecond)
	again, err := b.exec.Claim(ctx, "w2", 5, time.Minute)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.EqualValues(t, 2, again[0].Attempt)
	frep, err = b.exec.Fail(ctx, "w", bad)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{got[2].ID}, frep.Replayed)
	_, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[2].ID, Attempt: got[2].Attempt}})
	var lost *execution.LeaseLostError
	require.ErrorAs(t, err, &lost)
	require.Equal(t, []uuid.UUID{got[2].ID}, lost.IDs)
	// The old attempt cannot complete the new one, even for its holder's name.
	_, err = b.exec.Complete(ctx, "w2", []execution.Result{{ID: again[0].ID, Attempt: 1}})
	require.ErrorIs(t, err, runledger.ErrLeaseLost)
	require.Equal(t, runledger.StatusRunning, statusOf(t, b, again[0].ID))

	// Rescue takes an item back: its worker's late report is lost, and the
	// rest of the call is applied.
	expireLeases(t, b, got[3].ID)
	res, err := b.exec.Rescue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Retrying)
	rep, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[3].ID, Attempt: got[3].Attempt}, {ID: got[4].ID, Attempt: got[4].Attempt}})
	require.ErrorAs(t, err, &lost)
	require.ErrorIs(t, err, runledger.ErrLeaseLost)
	require.NotErrorIs(t, err, runledger.ErrStale)
	require.NotErrorIs(t, err, runledger.ErrTransient)
	require.Equal(t, []uuid.UUID{got[3].ID}, lost.IDs)
	require.Equal(t, []uuid.UUID{got[4].ID}, rep.Succeeded)

	// Nothing above added a history row beyond the real changes.
	var rows int
	require.NoError(t, b.db.SQL().QueryRow(`SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id WHERE ie.id = $1`, got[0].ID).Scan(&rows))
	require.Equal(t, 3, rows, "queued, running, succeeded")
}
