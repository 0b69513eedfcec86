package execution

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/dbtest"
)

// sharedSetup makes a started run of batches of one item each, all claimed
// by worker "w".
func sharedSetup(t *testing.T, batches int) (*Client, uuid.UUID, []Claimed) {
	t.Helper()
	ctx := context.Background()
	d := dbtest.New(t)
	c := New(d, Options{})
	t.Cleanup(func() { _ = c.Close() })
	a, err := d.Automation.Create().SetName("shared-" + uuid.NewString()[:8]).Save(ctx)
	require.NoError(t, err)
	for i := range batches {
		b, err := d.Batch.Create().SetAutomation(a).SetName(fmt.Sprintf("b%02d", i)).Save(ctx)
		require.NoError(t, err)
		_, err = c.AddItems(ctx, b.ID, Items([]NewItem{{SequenceNumber: 0, Payload: json.RawMessage(`{}`)}}))
		require.NoError(t, err)
	}
	run, err := c.StartRun(ctx, a.ID, StartOptions{})
	require.NoError(t, err)
	claimed, err := c.Claim(ctx, "w", batches, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, batches)
	return c, run.ID, claimed
}

func finishedBatchExecutions(t *testing.T, c *Client, run uuid.UUID) (int, runledger.ExecutionStatus) {
	t.Helper()
	var n int
	var status string
	require.NoError(t, c.sql.QueryRow(`SELECT count(*) FILTER (WHERE status = 'succeeded') FROM batch_execution WHERE run_id = $1`, run).Scan(&n))
	require.NoError(t, c.sql.QueryRow(`SELECT status FROM run WHERE id = $1`, run).Scan(&status))
	return n, runledger.ExecutionStatus(status)
}

// Reports that commit while a round runs join the next round: one roll-up
// for all of them, begun after every one of their commits, and none returns
// before it ends.
func TestRollupSharedRound(t *testing.T) {
	t.Parallel()
	const reports = 5
	c, run, claimed := sharedSetup(t, reports)
	ctx := context.Background()
	before := c.rollups.rounds.Load()

	// A round is running (held here): the reports must wait for the next.
	c.rollups.mu.Lock()
	c.rollups.running = true
	c.rollups.mu.Unlock()

	var (
		wg       sync.WaitGroup
		returned sync.Map
	)
	errs := make(chan error, reports)
	for i, cl := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := c.Complete(ctx, "w", []Result{{ID: cl.ID}})
			if err == nil && len(rep.Succeeded) != 1 {
				err = fmt.Errorf("report %d: %+v", i, rep)
			}
			returned.Store(i, true)
			errs <- err
		}()
	}
	// Every report commits and joins the next round, which cannot start yet.
	require.Eventually(t, func() bool {
		c.rollups.mu.Lock()
		defer c.rollups.mu.Unlock()
		return c.rollups.next != nil && len(c.rollups.next.ids) == reports
	}, 30*time.Second, time.Millisecond)
	n, _ := finishedBatchExecutions(t, c, run)
	require.Zero(t, n, "no roll-up yet")
	returned.Range(func(k, _ any) bool {
		t.Errorf("report %v returned before its roll-up", k)
		return true
	})

	// The held round ends: the next one starts and serves all five.
	c.rollups.mu.Lock()
	next := c.rollups.next
	c.rollups.next = nil
	next.lead <- struct{}{}
	c.rollups.mu.Unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, c.rollups.rounds.Load()-before, "one shared round")
	n, status := finishedBatchExecutions(t, c, run)
	require.Equal(t, reports, n)
	require.Equal(t, runledger.StatusSucceeded, status)
	c.rollups.mu.Lock()
	require.False(t, c.rollups.running, "the group is idle again")
	c.rollups.mu.Unlock()
}

// Many concurrent reports: whenever the last one returns, everything is
// rolled up (no sweep needed), in no more rounds than reports.
func TestRollupSharedConcurrent(t *testing.T) {
	t.Parallel()
	const reports = 24
	c, run, claimed := sharedSetup(t, reports)
	ctx := context.Background()
	before := c.rollups.rounds.Load()
	var wg sync.WaitGroup
	errs := make(chan error, reports)
	start := make(chan struct{})
	for _, cl := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := c.Complete(ctx, "w", []Result{{ID: cl.ID}})
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n, status := finishedBatchExecutions(t, c, run)
	require.Equal(t, reports, n)
	require.Equal(t, runledger.StatusSucceeded, status)
	rounds := c.rollups.rounds.Load() - before
	require.LessOrEqual(t, rounds, int64(reports))
	t.Logf("%d reports, %d roll-up rounds", reports, rounds)
}
