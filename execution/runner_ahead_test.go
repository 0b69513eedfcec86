package execution_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// claimSizes returns the number of items each claim statement of the run
// took: the 'running' history entries that one transaction wrote.
func claimSizes(t *testing.T, b *bundle, run uuid.UUID) []int {
	t.Helper()
	rows, err := b.db.SQL().QueryContext(context.Background(), `
		SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id
		WHERE ie.run_id = $1 AND h.new_status = 'running'
		GROUP BY h.xmin::text ORDER BY 1 DESC`, run)
	require.NoError(t, err)
	defer rows.Close()
	var sizes []int
	for rows.Next() {
		var n int
		require.NoError(t, rows.Scan(&n))
		sizes = append(sizes, n)
	}
	require.NoError(t, rows.Err())
	return sizes
}

// concurrencyProbe counts the handlers running at once.
type concurrencyProbe struct {
	now, peak atomic.Int64
}

func (p *concurrencyProbe) enter() {
	n := p.now.Add(1)
	for {
		m := p.peak.Load()
		if n <= m || p.peak.CompareAndSwap(m, n) {
			return
		}
	}
}

func (p *concurrencyProbe) leave() { p.now.Add(-1) }

// With handlers that return faster than a claim takes, a runner claims up to
// Concurrency items ahead of its free slots (fewer, larger claims), and
// still runs at most Concurrency handlers at once; with slower handlers it
// claims for its free slots only.
func TestRunnerClaimsAheadOnlyForQuickHandlers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		items       int
		concurrency int
		work        time.Duration
		wantLargest int
	}{
		{name: "quick handlers", items: 200, concurrency: 5, work: 0, wantLargest: 10},
		{name: "slow handlers", items: 8, concurrency: 2, work: 300 * time.Millisecond, wantLargest: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, execution.Options{}, tc.items)
			var probe concurrencyProbe
			ws := execution.NewWorkers()
			ws.Handle(b.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) {
				probe.enter()
				defer probe.leave()
				time.Sleep(tc.work)
				return nil, nil
			}), execution.HandlerOptions{Concurrency: tc.concurrency})
			startRunner(t, b, ws, execution.RunnerOptions{NoMaintenance: true})
			run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
			require.NoError(t, err)
			waitFor(t, "the run to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
			require.LessOrEqual(t, probe.peak.Load(), int64(tc.concurrency), "handlers at once")
			sizes := claimSizes(t, b, run.ID)
			require.Equal(t, tc.wantLargest, sizes[0], "largest claim (claim sizes %v)", sizes)
		})
	}
}

// aheadFixture: a runner (Concurrency 2) whose first two handler calls
// return at once (the runner learns its handlers are quick) and whose later
// ones block until released (or their context ends): two items running and
// two claimed ahead, waiting for their slots.
type aheadFixture struct {
	b       *bundle
	r       *execution.Runner
	run     uuid.UUID
	calls   atomic.Int64
	release chan struct{}
	mu      sync.Mutex
	handled map[uuid.UUID]error // the context's cause when each call returned
}

func newAheadFixture(t *testing.T, name string) *aheadFixture {
	t.Helper()
	ctx := context.Background()
	f := &aheadFixture{b: setup(t, execution.Options{}, 20), release: make(chan struct{}), handled: map[uuid.UUID]error{}}
	ws := execution.NewWorkers()
	ws.Handle(f.b.auto.Name, execution.HandlerFunc(func(ctx context.Context, it execution.Claimed) (json.RawMessage, error) {
		if f.calls.Add(1) > 2 {
			select {
			case <-f.release:
			case <-ctx.Done():
			}
		}
		f.mu.Lock()
		f.handled[it.ID] = context.Cause(ctx)
		f.mu.Unlock()
		return nil, context.Cause(ctx)
	}), execution.HandlerOptions{Concurrency: 2})
	f.r = startRunner(t, f.b, ws, execution.RunnerOptions{Name: name, Lease: time.Minute, NoMaintenance: true})
	run, err := f.b.exec.StartRun(ctx, f.b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	f.run = run.ID
	// Settled: the first two reported, two handlers blocked, and two items
	// claimed ahead (Concurrency more than the free slots) waiting for them.
	waitFor(t, "items claimed ahead", func() bool {
		return f.calls.Load() == 4 && f.count(t, "succeeded") == 2 && f.count(t, "running") == 4
	})
	return f
}

func (f *aheadFixture) count(t *testing.T, status string) int {
	t.Helper()
	var n int
	require.NoError(t, f.b.db.SQL().QueryRowContext(context.Background(),
		`SELECT count(*) FROM item_execution WHERE run_id = $1 AND status = $2`, f.run, status).Scan(&n))
	return n
}

// A graceful Stop runs the items claimed ahead, as it lets the running
// handlers finish; a Stop that gives up hands them back with the running
// ones, and no handler ever sees them.
func TestRunnerStopAndItemsClaimedAhead(t *testing.T) {
	t.Parallel()
	t.Run("graceful: run", func(t *testing.T) {
		t.Parallel()
		f := newAheadFixture(t, "r-ahead-graceful")
		stopped := make(chan error, 1)
		go func() { stopped <- f.r.Stop(context.Background()) }()
		time.Sleep(100 * time.Millisecond) // Stop is waiting for the handlers
		require.Equal(t, 4, f.count(t, "running"), "nothing handed back while handlers run")
		close(f.release)
		require.NoError(t, <-stopped)
		require.EqualValues(t, 6, f.calls.Load(), "the two items claimed ahead ran")
		require.Zero(t, f.r.Stats().HandedBack)
		require.Equal(t, 6, f.count(t, "succeeded"))
		require.Zero(t, f.count(t, "running"))
	})
	t.Run("Stop gives up: hand back", func(t *testing.T) {
		t.Parallel()
		f := newAheadFixture(t, "r-ahead-abrupt")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.NoError(t, f.r.Stop(ctx))
		require.EqualValues(t, 4, f.r.Stats().HandedBack, "two running, two claimed ahead")
		require.EqualValues(t, 4, f.calls.Load(), "no item claimed ahead reached a handler")
		require.Equal(t, 4, f.count(t, "retrying"))
		require.Equal(t, 2, f.count(t, "succeeded"))
		require.Zero(t, f.count(t, "running"))
	})
}

// An item whose run is cancelled while it waits for a slot never reaches a
// handler: it ends cancelled, like the running ones.
func TestRunnerCancelledRunSkipsItemsClaimedAhead(t *testing.T) {
	t.Parallel()
	f := newAheadFixture(t, "r-ahead-cancel")
	_, err := f.b.exec.CancelRun(context.Background(), f.run, "changed my mind")
	require.NoError(t, err)
	waitFor(t, "the run to end cancelled", func() bool { return runStatus(t, f.b, f.run) == runledger.StatusCancelled })
	require.EqualValues(t, 4, f.calls.Load(), "the two items claimed ahead were not handled")
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, cause := range f.handled {
		if cause != nil {
			require.ErrorIs(t, cause, execution.ErrRunCancelled, "%s", id)
		}
	}
	require.Equal(t, 18, f.count(t, "cancelled"), "all but the two that succeeded first")
}

// Items claimed ahead that wait behind handlers that stopped returning are
// handed back at the next heartbeat, for another runner to take, and the
// runner claims ahead no more until a handler returns.
func TestRunnerHandsBackItemsStuckBehindSlowHandlers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 20)
	var calls atomic.Int64
	release := make(chan struct{})
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) {
		if calls.Add(1) > 2 {
			<-release // hung, until the test lets it go
		}
		return nil, nil
	}), execution.HandlerOptions{Concurrency: 2})
	r := startRunner(t, b, ws, execution.RunnerOptions{Name: "r-stuck", Lease: execution.MinLease, NoMaintenance: true})
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	count := func(status string) int {
		var n int
		require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE run_id = $1 AND status = $2`, run.ID, status).Scan(&n))
		return n
	}
	waitFor(t, "the items claimed ahead to be handed back", func() bool { return r.Stats().HandedBack == 2 })
	// Only the two hung handlers' items are held now, and it stays so.
	time.Sleep(time.Second)
	require.Equal(t, 2, count("running"))
	require.Equal(t, 2, count("retrying"))
	require.EqualValues(t, 2, r.Stats().HandedBack)
	require.EqualValues(t, 4, calls.Load())
	close(release)
	waitFor(t, "the run to succeed", func() bool { return runStatus(t, b, run.ID) == runledger.StatusSucceeded })
}
