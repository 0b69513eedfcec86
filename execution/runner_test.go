package execution_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/execution"
)

func startRunner(t *testing.T, b *bundle, ws *execution.Workers, opts execution.RunnerOptions) *execution.Runner {
	t.Helper()
	if opts.MaintenanceInterval == 0 {
		opts.MaintenanceInterval = 200 * time.Millisecond
	}
	if opts.Lease == 0 {
		opts.Lease = 2 * time.Second
	}
	r, err := b.exec.NewRunner(ws, opts)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runStatus(t *testing.T, b *bundle, id uuid.UUID) runledger.ExecutionStatus {
	t.Helper()
	r, err := b.db.Run.Get(context.Background(), id)
	require.NoError(t, err)
	return r.Status
}

func TestRunnerProcessesOnlyItsAutomations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 30)
	other := addAutomation(t, b, "other-"+uuid.NewString()[:8], 5)

	var calls, wrapped atomic.Int64
	first := make(chan time.Time, 1)
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(_ context.Context, it execution.Claimed) (json.RawMessage, error) {
		select {
		case first <- time.Now():
		default:
		}
		calls.Add(1)
		if it.AutomationID != b.auto.ID {
			return nil, errors.New("wrong automation")
		}
		return json.RawMessage(fmt.Sprintf(`{"seq":%d}`, it.SequenceNumber)), nil
	}), execution.HandlerOptions{Concurrency: 4})
	ws.Use(func(h execution.Handler) execution.Handler {
		return execution.HandlerFunc(func(ctx context.Context, it execution.Claimed) (json.RawMessage, error) {
			wrapped.Add(1)
			return h.Handle(ctx, it)
		})
	})
	r := startRunner(t, b, ws, execution.RunnerOptions{Name: "r1", PollInterval: 5 * time.Second})
	time.Sleep(100 * time.Millisecond) // idle: the first poll is done

	otherRun, err := b.exec.StartRun(ctx, other.ID, execution.StartOptions{})
	require.NoError(t, err)
	started := time.Now()
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	select {
	case at := <-first:
		// Woken by the notification, not the 5s poll.
		require.Less(t, at.Sub(started), 2*time.Second)
	case <-time.After(4 * time.Second):
		t.Fatal("the runner was not woken by StartRun's notification")
	}
	waitFor(t, "the run to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
	require.EqualValues(t, 30, calls.Load())
	require.EqualValues(t, 30, wrapped.Load(), "middleware wraps every call")
	// The counts follow the report (the run finished inside it).
	waitFor(t, "the counts", func() bool { return r.Stats().Succeeded == 30 })
	require.EqualValues(t, 30, r.Stats().Claimed)

	var seq int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT (result_payload->>'seq')::int FROM item_execution ie JOIN item i ON i.id = ie.item_id
		WHERE ie.run_id = $1 AND i.sequence_number = 7`, run.ID).Scan(&seq))
	require.Equal(t, 7, seq)
	// The other automation's items were never touched.
	p, err := b.exec.Progress(ctx, otherRun.ID)
	require.NoError(t, err)
	require.EqualValues(t, 5, p.Counts[runledger.StatusQueued])
}

func TestRunnerFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond}, 4)
	var attempts sync.Map
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(ctx context.Context, it execution.Claimed) (json.RawMessage, error) {
		attempts.Store(it.SequenceNumber, it.Attempt)
		switch it.SequenceNumber {
		case 0:
			return nil, errors.New("plain error")
		case 1:
			return nil, execution.NonRetryable(errors.New("bad input"))
		case 2:
			panic("boom")
		default:
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}
	}), execution.HandlerOptions{Concurrency: 4, Timeout: 200 * time.Millisecond})
	startRunner(t, b, ws, execution.RunnerOptions{Name: "r-fail"})
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 2})
	require.NoError(t, err)
	waitFor(t, "the run to fail", func() bool { return runStatus(t, b, run.ID) == runledger.StatusFailed })

	rows, err := b.db.SQL().QueryContext(ctx, `SELECT i.sequence_number, ie.status, ie.attempt_count, ie.error_message
		FROM item_execution ie JOIN item i ON i.id = ie.item_id WHERE ie.run_id = $1 ORDER BY 1`, run.ID)
	require.NoError(t, err)
	defer rows.Close()
	type row struct {
		status   string
		attempts int
		msg      string
	}
	var got []row
	for rows.Next() {
		var (
			seq int
			r   row
		)
		require.NoError(t, rows.Scan(&seq, &r.status, &r.attempts, &r.msg))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 4)
	require.Equal(t, row{"failed", 2, "plain error"}, got[0], "retried once, then failed")
	require.Equal(t, row{"failed", 1, "bad input"}, got[1], "NonRetryable: no retry")
	require.Equal(t, "failed", got[2].status)
	require.Equal(t, 2, got[2].attempts, "a panic is retried")
	require.Contains(t, got[2].msg, "panic: boom")
	require.Contains(t, got[2].msg, "runner_test.go", "with the stack")
	require.Equal(t, 2, got[3].attempts)
	require.Contains(t, got[3].msg, execution.ErrHandlerTimeout.Error())
}

// TestRunnerRetryComesDueWithoutPoll: a failed item whose retry comes due
// is claimed again at its backoff, not at the next fallback poll (an hour
// here): the report of a retry re-arms the fetch loop's next-due timer.
func TestRunnerRetryComesDueWithoutPoll(t *testing.T) {
	t.Parallel()
	for _, backoff := range []time.Duration{50 * time.Millisecond, time.Millisecond} {
		// 1 ms: the retry comes due while the claim that follows its report
		// runs, so the claim misses it and the loop must claim again.
		t.Run(backoff.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, execution.Options{RetryBase: backoff, RetryMax: backoff}, 1)
			ws := execution.NewWorkers()
			ws.Handle(b.auto.Name, execution.HandlerFunc(func(_ context.Context, it execution.Claimed) (json.RawMessage, error) {
				if it.Attempt == 1 {
					return nil, errors.New("flaky once")
				}
				return nil, nil
			}), execution.HandlerOptions{Concurrency: 1})
			startRunner(t, b, ws, execution.RunnerOptions{Name: "r-retry", PollInterval: time.Hour, NoMaintenance: true})
			run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 2})
			require.NoError(t, err)
			waitFor(t, "the retried item to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
		})
	}
}

func TestRunnerCancelReachesHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	causes := make(chan error, 2)
	running := make(chan struct{}, 2)
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(ctx context.Context, _ execution.Claimed) (json.RawMessage, error) {
		running <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	}), execution.HandlerOptions{Concurrency: 2})
	// A long lease: the cancel must arrive by notification, not by the
	// periodic heartbeat.
	startRunner(t, b, ws, execution.RunnerOptions{Name: "r-cancel", Lease: time.Minute})
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	<-running
	<-running
	res, err := b.exec.CancelRun(ctx, run.ID, "stop it")
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Flagged)
	for range 2 {
		select {
		case cause := <-causes:
			require.ErrorIs(t, cause, execution.ErrRunCancelled)
		case <-time.After(5 * time.Second):
			t.Fatal("the cancel did not reach the handler")
		}
	}
	waitFor(t, "the run to be cancelled", func() bool { return runStatus(t, b, run.ID) == runledger.StatusCancelled })
}

func TestRunnerStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 3)
	var block atomic.Bool
	block.Store(true)
	started := make(chan struct{}, 3)
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(ctx context.Context, _ execution.Claimed) (json.RawMessage, error) {
		if !block.Load() {
			return nil, nil
		}
		started <- struct{}{}
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}), execution.HandlerOptions{Concurrency: 3})
	r, err := b.exec.NewRunner(ws, execution.RunnerOptions{Name: "r-stop", Lease: time.Minute, NoMaintenance: true})
	require.NoError(t, err)
	require.NoError(t, r.Stop(ctx), "Stop without Start does nothing")
	require.NoError(t, r.Start(ctx))
	require.ErrorIs(t, r.Start(ctx), execution.ErrRunnerRunning)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 1})
	require.NoError(t, err)
	for range 3 {
		<-started
	}
	stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.NoError(t, r.Stop(stopCtx))
	require.NoError(t, r.Stop(ctx), "a second Stop does nothing")
	require.EqualValues(t, 3, r.Stats().HandedBack)
	require.Zero(t, r.Stats().InFlight)
	// Handed back at once, not left to the one-minute lease; the
	// interrupted attempt counts, and does not fail the item although it
	// was the last one.
	var retrying, attempts int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status = 'retrying' AND lease_expires_at IS NULL AND not_before <= now()), sum(attempt_count)
		FROM item_execution WHERE run_id = $1`, run.ID).Scan(&retrying, &attempts))
	require.Equal(t, 3, retrying)
	require.Equal(t, 3, attempts)

	// Start again after Stop: the items are finished.
	block.Store(false)
	require.NoError(t, r.Start(ctx))
	waitFor(t, "the run to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
	require.NoError(t, r.Stop(ctx))
}

func TestRunnerMaintenanceFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Advisory locks are per database: in this test's own database only
	// these two runners compete.
	b := setup(t, execution.Options{}, 1)
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) { return nil, nil }), execution.HandlerOptions{})
	opts := execution.RunnerOptions{MaintenanceInterval: 100 * time.Millisecond, Lease: time.Second}
	opts.Name = "m1"
	r1 := startRunner(t, b, ws, opts)
	opts.Name = "m2"
	r2 := startRunner(t, b, ws, opts)
	waitFor(t, "a leader", func() bool { return r1.Stats().Leader || r2.Stats().Leader })
	time.Sleep(300 * time.Millisecond)
	require.False(t, r1.Stats().Leader && r2.Stats().Leader, "one leader at a time")
	leader, follower := r1, r2
	if r2.Stats().Leader {
		leader, follower = r2, r1
	}
	require.NoError(t, leader.Stop(ctx))
	waitFor(t, "the follower to take over", func() bool { return follower.Stats().Leader })
}

// TestRunnerRescuesDeadWorker: a worker claims and dies (never reports);
// the runner's maintenance takes the item back once the lease expires and
// the runner finishes it.
func TestRunnerRescuesDeadWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond}, 2)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	dead, err := b.exec.Claim(ctx, "dead-worker", 1, time.Second)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) { return nil, nil }), execution.HandlerOptions{})
	r := startRunner(t, b, ws, execution.RunnerOptions{Name: "rescuer", MaintenanceInterval: 100 * time.Millisecond})
	waitFor(t, "the run to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
	require.Positive(t, r.Stats().Rescued, "rescued by this runner's maintenance (advisory locks are per database: it is the only candidate)")
}

func TestStartRunTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 3)
	count := func() int {
		var n int
		require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE automation_id = $1`, b.auto.ID).Scan(&n))
		return n
	}
	// A listener of our own sees what a runner would.
	l := b.db.NewListener(nil)
	t.Cleanup(func() { _ = l.Close() })
	require.NoError(t, l.Listen("runledger_work"))
	noNotification := func() {
		select {
		case n := <-l.Notify:
			if n != nil {
				t.Fatalf("unexpected notification %+v", n)
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	notified := func() {
		select {
		case n := <-l.Notify:
			require.NotNil(t, n)
			require.Equal(t, b.auto.ID.String(), n.Extra)
		case <-time.After(5 * time.Second):
			t.Fatal("no notification after commit")
		}
	}

	t.Run("sql.Tx", func(t *testing.T) { //nolint:paralleltest // the subtests share the listener and the counts, in order
		tx, err := b.db.SQL().BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = b.exec.StartRunTx(ctx, tx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())
		require.Zero(t, count(), "rollback leaves nothing")
		noNotification()
		tx, err = b.db.SQL().BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = b.exec.StartRunTx(ctx, tx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		noNotification()
		require.NoError(t, tx.Commit())
		require.Equal(t, 3, count())
		notified()
	})
	t.Run("ent.Tx", func(t *testing.T) { //nolint:paralleltest // the subtests share the listener and the counts, in order
		tx, err := b.db.Tx(ctx)
		require.NoError(t, err)
		bt, err := tx.Batch.Create().SetAutomationID(b.auto.ID).SetName("in-tx").Save(ctx)
		require.NoError(t, err)
		n, err := b.exec.AddItemsTx(ctx, tx, bt.ID, execution.Items([]execution.NewItem{
			{SequenceNumber: 0, Payload: json.RawMessage(`{"n": 0}`)}, {SequenceNumber: 1, Payload: json.RawMessage(`{"n": 1}`)}}))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		_, err = b.exec.StartRunTx(ctx, tx, b.auto.ID, execution.StartOptions{Batches: []uuid.UUID{bt.ID}})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())
		require.Equal(t, 3, count(), "rollback leaves nothing")
		noNotification()
		tx, err = b.db.Tx(ctx)
		require.NoError(t, err)
		bt, err = tx.Batch.Create().SetAutomationID(b.auto.ID).SetName("in-tx").Save(ctx)
		require.NoError(t, err)
		_, err = b.exec.AddItemsTx(ctx, tx, bt.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0, Payload: json.RawMessage(`{"n": 0}`)}}))
		require.NoError(t, err)
		_, err = b.exec.StartRunTx(ctx, tx, b.auto.ID, execution.StartOptions{Batches: []uuid.UUID{bt.ID}})
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		require.Equal(t, 4, count())
		notified()
	})
	var _ execution.Tx = (*sql.Tx)(nil)
	var _ execution.Tx = (*ent.Tx)(nil)
}

// TestRunnerNoGoroutineLeak is not parallel: goleak compares the
// goroutines before and after, which other tests would disturb.
func TestRunnerNoGoroutineLeak(t *testing.T) { //nolint:paralleltest // goleak needs the package to itself
	ctx := context.Background()
	b := setup(t, execution.Options{}, 5)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(ctx context.Context, it execution.Claimed) (json.RawMessage, error) {
		if it.SequenceNumber == 4 {
			<-ctx.Done() // still running at Stop
		}
		return nil, nil
	}), execution.HandlerOptions{Concurrency: 5})
	r, err := b.exec.NewRunner(ws, execution.RunnerOptions{Name: "leak", MaintenanceInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	_, err = b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	waitFor(t, "four items to succeed", func() bool { return r.Stats().Succeeded == 4 })
	stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.NoError(t, r.Stop(stopCtx))
	require.True(t, strings.HasPrefix(r.Name(), "leak"))
}

// TestRunnerBadOutputFailsOnlyItsItem: a result nested too deep and an error
// text with a NUL and invalid UTF-8 fail their own items; the other items of
// the same flush still succeed.
func TestRunnerBadOutputFailsOnlyItsItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 4)
	deep := json.RawMessage(strings.Repeat("[", 200) + strings.Repeat("]", 200))
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(ctx context.Context, it execution.Claimed) (json.RawMessage, error) {
		switch it.SequenceNumber {
		case 0:
			return deep, nil
		case 1:
			return nil, errors.New("bad\x00bytes \xff here")
		default:
			return json.RawMessage(`{"ok":true}`), nil
		}
	}), execution.HandlerOptions{Concurrency: 4})
	startRunner(t, b, ws, execution.RunnerOptions{Name: "r-bad-output"})
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 1})
	require.NoError(t, err)
	waitFor(t, "the run to finish", func() bool { return runStatus(t, b, run.ID) == runledger.StatusFailed })

	rows, err := b.db.SQL().QueryContext(ctx, `SELECT ie.status, coalesce(ie.error_message, '')
		FROM item_execution ie JOIN item i ON i.id = ie.item_id WHERE ie.run_id = $1 ORDER BY i.sequence_number`, run.ID)
	require.NoError(t, err)
	defer rows.Close()
	var status, msg []string
	for rows.Next() {
		var s, m string
		require.NoError(t, rows.Scan(&s, &m))
		status, msg = append(status, s), append(msg, m)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"failed", "failed", "succeeded", "succeeded"}, status)
	require.Contains(t, msg[0], "nested deeper than")
	require.Equal(t, "badbytes \uFFFD here", msg[1])
}
