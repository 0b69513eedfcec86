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

// Stop hands back at once the items claimed ahead that no handler started,
// and they are never given to a handler; the running handlers' items are
// reported when they return.
func TestRunnerStopHandsBackItemsClaimedAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 20)
	var (
		calls   atomic.Int64
		mu      sync.Mutex
		handled = map[uuid.UUID]bool{}
	)
	release := make(chan struct{})
	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(_ context.Context, it execution.Claimed) (json.RawMessage, error) {
		mu.Lock()
		handled[it.ID] = true
		mu.Unlock()
		if calls.Add(1) > 2 {
			<-release // the first two return at once: the runner learns that handlers are quick
		}
		return nil, nil
	}), execution.HandlerOptions{Concurrency: 2})
	r := startRunner(t, b, ws, execution.RunnerOptions{Name: "r-ahead", Lease: time.Minute, NoMaintenance: true})
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	running := func() int {
		var n int
		require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE run_id = $1 AND status = 'running'`, run.ID).Scan(&n))
		return n
	}
	succeeded := func() int {
		var n int
		require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE run_id = $1 AND status = 'succeeded'`, run.ID).Scan(&n))
		return n
	}
	// Settled: the first two reported, two handlers blocked, and two items
	// claimed ahead (Concurrency more than the free slots) waiting for them.
	const ahead = 2
	waitFor(t, "items claimed ahead", func() bool { return calls.Load() == 4 && succeeded() == 2 && running() == 2+ahead })

	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop(ctx) }()
	waitFor(t, "the items claimed ahead to be handed back", func() bool { return running() == 2 })
	close(release)
	require.NoError(t, <-stopped)
	require.EqualValues(t, ahead, r.Stats().HandedBack)
	require.EqualValues(t, 4, calls.Load(), "no item claimed ahead reached a handler")

	var retrying int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE run_id = $1 AND status = 'retrying' AND lease_expires_at IS NULL`, run.ID).Scan(&retrying))
	require.Equal(t, 4, succeeded())
	require.Equal(t, ahead, retrying)
	rows, err := b.db.SQL().QueryContext(ctx, `SELECT id FROM item_execution WHERE run_id = $1 AND status = 'retrying'`, run.ID)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		require.False(t, handled[id], "%s was handed back after its handler ran", id)
	}
	require.NoError(t, rows.Err())
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
