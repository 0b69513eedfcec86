package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// TestManyWorkers: 16 workers burn down 10k items with random retryable
// failures. Every item is claimed exactly once per attempt and finished
// exactly once, its history is complete, the roll-up is right and Progress
// equals a direct count.
func TestManyWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const items, workers = 10000, 16
	b := setup(t, execution.Options{RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond}, items/2, items/2)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{MaxAttempts: 3})
	require.NoError(t, err)

	type key struct {
		id      uuid.UUID
		attempt int32
	}
	var (
		mu       sync.Mutex
		claims   = map[key]string{}
		finished = map[uuid.UUID]int{}
		failed   = map[uuid.UUID]bool{}
		wg       sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("worker-%02d", w)
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			idle := 0
			for idle < 50 {
				got, err := b.exec.Claim(ctx, name, 50, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					idle++
					time.Sleep(5 * time.Millisecond)
					continue
				}
				idle = 0
				var ok []execution.Result
				var bad []execution.Failure
				mu.Lock()
				for _, c := range got {
					k := key{c.ID, c.Attempt}
					if prev, dup := claims[k]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("item %s attempt %d claimed by %s and %s", c.ID, c.Attempt, prev, name)
						return
					}
					claims[k] = name
					if rng.IntN(10) == 0 {
						bad = append(bad, execution.Failure{ID: c.ID, Error: "flaky"})
					} else {
						ok = append(ok, execution.Result{ID: c.ID, Payload: json.RawMessage(`{"done":true}`)})
					}
				}
				mu.Unlock()
				rep, err := b.exec.Complete(ctx, name, ok)
				if err != nil {
					errs <- err
					return
				}
				frep, err := b.exec.Fail(ctx, name, bad)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, id := range append(rep.Succeeded, frep.Failed...) {
					finished[id]++
				}
				for _, id := range frep.Failed {
					failed[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, finished, items, "every item finished")
	for id, n := range finished {
		require.Equal(t, 1, n, "item %s finished %d times", id, n)
	}

	// History: every item's rows chain from queued (no previous) to its final status.
	var broken, items2 int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `
		WITH h AS (
			SELECT ie.id, h.previous_status, h.new_status,
				lag(h.new_status) OVER (PARTITION BY h.item_execution_id ORDER BY h.changed_at, h.id) AS expected_prev,
				row_number() OVER (PARTITION BY h.item_execution_id ORDER BY h.changed_at DESC, h.id) AS from_end
			FROM item_execution ie JOIN item_state_history h ON h.item_execution_id = ie.id
			WHERE ie.run_id = $1)
		SELECT count(*) FILTER (WHERE previous_status IS DISTINCT FROM expected_prev), count(DISTINCT id)
		FROM h`, run.ID).Scan(&broken, &items2))
	require.Zero(t, broken, "history rows chain for every item")
	require.Equal(t, items, items2)
	var attemptsInHistory, attemptsClaimed int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id WHERE ie.run_id = $1 AND h.new_status = 'running'`, run.ID).Scan(&attemptsInHistory))
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT sum(attempt_count) FROM item_execution WHERE run_id = $1`, run.ID).Scan(&attemptsClaimed))
	require.Equal(t, len(claims), attemptsInHistory, "one running row per claim")
	require.Equal(t, len(claims), attemptsClaimed)

	// Roll-up and progress.
	p, err := b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	requireProgressMatchesCount(t, b, run.ID, p)
	require.EqualValues(t, items, p.Counts.Finished())
	require.EqualValues(t, len(failed), p.Counts[runledger.StatusFailed])
	want := runledger.StatusSucceeded
	if len(failed) > 0 {
		want = runledger.StatusFailed
	}
	require.Equal(t, want, p.Status)
	for _, bp := range p.Batches {
		require.True(t, bp.Status.Terminal(), "batch %s is %s", bp.Name, bp.Status)
	}
}

func requireProgressMatchesCount(t *testing.T, b *bundle, runID uuid.UUID, p *execution.Progress) {
	t.Helper()
	rows, err := b.db.SQL().Query(`SELECT batch_execution_id, status, count(*) FROM item_execution WHERE run_id = $1 GROUP BY 1, 2`, runID)
	require.NoError(t, err)
	defer rows.Close()
	direct := map[uuid.UUID]execution.Counts{}
	total := execution.Counts{}
	for rows.Next() {
		var (
			be     uuid.UUID
			status runledger.ExecutionStatus
			n      int64
		)
		require.NoError(t, rows.Scan(&be, &status, &n))
		if direct[be] == nil {
			direct[be] = execution.Counts{}
		}
		direct[be][status] = n
		total[status] += n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, total, p.Counts)
	for _, bp := range p.Batches {
		want := direct[bp.ID]
		if want == nil {
			want = execution.Counts{}
		}
		require.Equal(t, want, bp.Counts, bp.Name)
	}
}
