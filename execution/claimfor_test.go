package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/execution"
)

// addAutomation adds an automation with one batch of n items to b's database.
func addAutomation(t *testing.T, b *bundle, name string, n int) *ent.Automation {
	t.Helper()
	ctx := context.Background()
	a, err := b.db.Automation.Create().SetName(name).Save(ctx)
	require.NoError(t, err)
	bt, err := b.db.Batch.Create().SetAutomation(a).SetName("batch").Save(ctx)
	require.NoError(t, err)
	items := make([]execution.NewItem, n)
	for j := range items {
		items[j] = execution.NewItem{SequenceNumber: int32(j), Payload: json.RawMessage(fmt.Sprintf(`{"n": %d}`, j))}
	}
	_, err = b.exec.AddItems(ctx, bt.ID, execution.Items(items))
	require.NoError(t, err)
	return a
}

func TestClaimFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{})
	x := addAutomation(t, b, "x-"+uuid.NewString()[:8], 4)
	y := addAutomation(t, b, "y-"+uuid.NewString()[:8], 4)
	z := addAutomation(t, b, "z-"+uuid.NewString()[:8], 2)
	_, err := b.exec.StartRun(ctx, x.ID, execution.StartOptions{Priority: 5})
	require.NoError(t, err)
	_, err = b.exec.StartRun(ctx, y.ID, execution.StartOptions{Priority: 1})
	require.NoError(t, err)
	_, err = b.exec.StartRun(ctx, z.ID, execution.StartOptions{})
	require.NoError(t, err)

	_, err = b.exec.ClaimFor(ctx, "w", 10, time.Minute, execution.ClaimOptions{})
	require.ErrorIs(t, err, runledger.ErrInvalid, "an empty scope is a mistake, not 'any automation'")
	got, err := b.exec.ClaimFor(ctx, "w", 10, time.Minute, execution.ClaimOptions{Automations: []string{"nobody"}, AutomationIDs: []uuid.UUID{uuid.New()}})
	require.NoError(t, err)
	require.Empty(t, got)

	// By name, across two automations, in claim order (y's priority 1 first).
	got, err = b.exec.ClaimFor(ctx, "w", 6, time.Minute, execution.ClaimOptions{Automations: []string{x.Name, y.Name}})
	require.NoError(t, err)
	require.Len(t, got, 6)
	per := map[uuid.UUID]int{}
	for _, c := range got {
		per[c.AutomationID]++
		name := map[uuid.UUID]string{x.ID: x.Name, y.ID: y.Name}[c.AutomationID]
		require.Equal(t, name, c.AutomationName)
		require.EqualValues(t, 1, c.Attempt)
		require.NotEmpty(t, c.Payload)
	}
	require.Equal(t, map[uuid.UUID]int{y.ID: 4, x.ID: 2}, per)
	// By id: x's last two; y has nothing left.
	got, err = b.exec.ClaimFor(ctx, "w", 10, time.Minute, execution.ClaimOptions{AutomationIDs: []uuid.UUID{x.ID, y.ID}})
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, c := range got {
		require.Equal(t, x.ID, c.AutomationID)
	}
	// z's items were never touched by the scoped claims.
	var running int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE automation_id = $1 AND status <> 'queued'`, z.ID).Scan(&running))
	require.Zero(t, running)
	// Claim takes any automation's items, with their automation.
	got, err = b.exec.Claim(ctx, "w", 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, c := range got {
		require.Equal(t, z.ID, c.AutomationID)
		require.Equal(t, z.Name, c.AutomationName)
	}
}

// TestClaimForConcurrent: scoped claimers racing on one automation never
// get the same item, and all items are claimed.
func TestClaimForConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{})
	a := addAutomation(t, b, "c-"+uuid.NewString()[:8], 300)
	_, err := b.exec.StartRun(ctx, a.ID, execution.StartOptions{})
	require.NoError(t, err)
	seen := make(chan uuid.UUID, 400)
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for {
				got, err := b.exec.ClaimFor(ctx, fmt.Sprintf("w%d", w), 7, time.Minute, execution.ClaimOptions{Automations: []string{a.Name}})
				if err != nil || len(got) == 0 {
					errs <- err
					return
				}
				for _, c := range got {
					seen <- c.ID
				}
			}
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	close(seen)
	ids := map[uuid.UUID]bool{}
	for id := range seen {
		require.False(t, ids[id], "claimed twice")
		ids[id] = true
	}
	require.Len(t, ids, 300)
}
