package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// finish claims and completes every claimable item and checks that run is
// then succeeded.
func finish(t *testing.T, b *bundle, runID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	claimed, err := b.exec.Claim(ctx, "w", 1000, time.Minute)
	require.NoError(t, err)
	results := make([]execution.Result, len(claimed))
	for i, cl := range claimed {
		require.Equal(t, runID, cl.RunID)
		results[i] = execution.Result{ID: cl.ID, Payload: json.RawMessage(`{"ok":true}`)}
	}
	_, err = b.exec.Complete(ctx, "w", results)
	require.NoError(t, err)
	r, err := b.db.Run.Get(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusSucceeded, r.Status)
}

// backdate moves a run's timestamps ago into the past. The status is left
// alone, so the guard trigger only bumps the version.
func backdate(t *testing.T, b *bundle, runID uuid.UUID, ago time.Duration) {
	t.Helper()
	_, err := b.db.SQL().Exec(`UPDATE run SET
		started_at = coalesce(started_at, now()) - $2 * interval '1 second' - interval '1 hour',
		finished_at = coalesce(finished_at, now()) - $2 * interval '1 second'
		WHERE id = $1`, runID, ago.Seconds())
	require.NoError(t, err)
}

// count runs a count(*) query with one argument.
func count(t *testing.T, b *bundle, query string, arg any) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.SQL().QueryRow(query, arg).Scan(&n))
	return n
}

func itemExecutionIDs(t *testing.T, b *bundle, runID uuid.UUID) []string {
	t.Helper()
	rows, err := b.db.SQL().Query(`SELECT id FROM item_execution WHERE run_id = $1`, runID)
	require.NoError(t, err)
	defer func() { require.NoError(t, rows.Close()) }()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

func TestPurge(t *testing.T) {
	t.Parallel()
	const items = 30 // 17 + 13, in two batches
	tests := []struct {
		batchSize      int
		chunksPerRun   int // DELETE statements that delete something
		wantLargestCut int64
	}{
		{batchSize: 0, chunksPerRun: 1, wantLargestCut: items}, // the default, 5000
		{batchSize: 7, chunksPerRun: 5, wantLargestCut: 7},     // 7+7+7+7+2
		{batchSize: 15, chunksPerRun: 2, wantLargestCut: 15},   // an exact multiple: a last empty DELETE
		{batchSize: 1, chunksPerRun: 30, wantLargestCut: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("batch size %d", tt.batchSize), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, execution.Options{}, 17, 13)

			// An old succeeded run, linked to an orchestration instance.
			old, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
			require.NoError(t, err)
			finish(t, b, old.ID)
			eng, err := b.exec.RegisterEngine(ctx, "jenkins", "jenkins")
			require.NoError(t, err)
			inst, err := b.exec.AttachInstance(ctx, old.ID, eng.ID, "job/1", nil)
			require.NoError(t, err)

			// An old cancelled run.
			cancelled, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
			require.NoError(t, err)
			_, err = b.exec.CancelRun(ctx, cancelled.ID, "not needed")
			require.NoError(t, err)
			r, err := b.db.Run.Get(ctx, cancelled.ID)
			require.NoError(t, err)
			require.Equal(t, runledger.StatusCancelled, r.Status)

			// A recent succeeded run.
			recent, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
			require.NoError(t, err)
			finish(t, b, recent.ID)

			// A running run, started long ago. Its finished_at is set in the
			// past too (a state the API never makes) to show that only the
			// status decides whether a run is finished.
			running, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
			require.NoError(t, err)
			claimed, err := b.exec.Claim(ctx, "w", 5, time.Minute)
			require.NoError(t, err)
			require.Len(t, claimed, 5)

			backdate(t, b, old.ID, 40*24*time.Hour)
			backdate(t, b, cancelled.ID, 40*24*time.Hour)
			backdate(t, b, running.ID, 40*24*time.Hour)

			gone := append(itemExecutionIDs(t, b, old.ID), itemExecutionIDs(t, b, cancelled.ID)...)
			require.Len(t, gone, 2*items)
			require.Positive(t, count(t, b, `SELECT count(*) FROM item_state_history WHERE item_execution_id = ANY($1::uuid[])`, pq.Array(gone)))

			var (
				mu    sync.Mutex
				calls []execution.PurgeResult
			)
			res, err := b.exec.Purge(ctx, time.Now().Add(-30*24*time.Hour), execution.PurgeOptions{
				BatchSize: tt.batchSize,
				Progress: func(r execution.PurgeResult) {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, r)
				},
			})
			require.NoError(t, err)
			require.Equal(t, execution.PurgeResult{Runs: 2, ItemExecutions: 2 * items}, res)

			// Progress: after every chunk and every run, with running totals.
			require.Len(t, calls, 2*(tt.chunksPerRun+1))
			require.Equal(t, res, calls[len(calls)-1])
			var prev execution.PurgeResult
			for _, c := range calls {
				require.GreaterOrEqual(t, c.Runs, prev.Runs)
				require.Greater(t, c.Runs+c.ItemExecutions, prev.Runs+prev.ItemExecutions)
				require.LessOrEqual(t, c.ItemExecutions-prev.ItemExecutions, tt.wantLargestCut)
				prev = c
			}

			// The purged runs are gone entirely.
			for _, id := range []uuid.UUID{old.ID, cancelled.ID} {
				for _, q := range []string{
					`SELECT count(*) FROM run WHERE id = $1`,
					`SELECT count(*) FROM batch_execution WHERE run_id = $1`,
					`SELECT count(*) FROM item_execution WHERE run_id = $1`,
					`SELECT count(*) FROM status_count WHERE run_id = $1`,
					`SELECT count(*) FROM run_orchestration WHERE run_id = $1`,
				} {
					require.Zero(t, count(t, b, q, id), q)
				}
			}
			require.Zero(t, count(t, b, `SELECT count(*) FROM item_state_history WHERE item_execution_id = ANY($1::uuid[])`, pq.Array(gone)))

			// The definitions and the orchestration instance stay.
			require.Equal(t, items, count(t, b, `SELECT count(*) FROM item i JOIN batch b ON b.id = i.batch_id WHERE b.automation_id = $1`, b.auto.ID))
			_, err = b.db.OrchestrationInstance.Get(ctx, inst.ID)
			require.NoError(t, err)

			// The recent and the running runs are untouched.
			for _, kept := range []struct {
				id     uuid.UUID
				status runledger.ExecutionStatus
			}{{recent.ID, runledger.StatusSucceeded}, {running.ID, runledger.StatusRunning}} {
				p, err := b.exec.Progress(ctx, kept.id)
				require.NoError(t, err)
				require.Equal(t, kept.status, p.Status)
				require.EqualValues(t, items, p.Counts.Total())
				require.Equal(t, items, count(t, b, `SELECT count(*) FROM item_execution WHERE run_id = $1`, kept.id))
				require.Equal(t, 2, count(t, b, `SELECT count(*) FROM batch_execution WHERE run_id = $1`, kept.id))
				require.Positive(t, count(t, b, `SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id WHERE ie.run_id = $1`, kept.id))
			}

			// Nothing left to purge.
			again, err := b.exec.Purge(ctx, time.Now().Add(-30*24*time.Hour), execution.PurgeOptions{BatchSize: tt.batchSize})
			require.NoError(t, err)
			require.Equal(t, execution.PurgeResult{}, again)
		})
	}
}

func TestPurgeCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, execution.Options{}, 20)
	run, err := b.exec.StartRun(context.Background(), b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	_, err = b.exec.CancelRun(context.Background(), run.ID, "old")
	require.NoError(t, err)
	backdate(t, b, run.ID, 48*time.Hour)
	cutoff := time.Now().Add(-24 * time.Hour)

	// Stop after the first chunk: the counts tell what was deleted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	res, err := b.exec.Purge(ctx, cutoff, execution.PurgeOptions{BatchSize: 7, Progress: func(execution.PurgeResult) {
		calls++
		cancel()
	}})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, execution.PurgeResult{ItemExecutions: 7}, res)
	require.Equal(t, 1, calls)
	require.Equal(t, 13, count(t, b, `SELECT count(*) FROM item_execution WHERE run_id = $1`, run.ID))
	require.Equal(t, 1, count(t, b, `SELECT count(*) FROM run WHERE id = $1`, run.ID))

	// A second call finishes the job.
	res, err = b.exec.Purge(context.Background(), cutoff, execution.PurgeOptions{BatchSize: 7})
	require.NoError(t, err)
	require.Equal(t, execution.PurgeResult{Runs: 1, ItemExecutions: 13}, res)
	require.Zero(t, count(t, b, `SELECT count(*) FROM run WHERE id = $1`, run.ID))

	// An already cancelled context deletes nothing.
	res, err = b.exec.Purge(ctx, cutoff, execution.PurgeOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, execution.PurgeResult{}, res)
}
