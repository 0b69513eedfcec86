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
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
)

type bundle struct {
	db      *db.DB
	exec    *execution.Client
	auto    *ent.Automation
	batches []*ent.Batch
}

// setup creates an automation with batches of n items each through AddItems.
func setup(t testing.TB, opts execution.Options, sizes ...int) *bundle {
	t.Helper()
	ctx := context.Background()
	d := dbtest.New(t)
	b := &bundle{db: d, exec: execution.New(d, opts)}
	var err error
	b.auto, err = d.Automation.Create().SetName("auto-" + uuid.NewString()[:8]).
		SetItemSchema(map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}, "required": []any{"n"}}).
		Save(ctx)
	require.NoError(t, err)
	for i, size := range sizes {
		bt, err := d.Batch.Create().SetAutomation(b.auto).SetName(fmt.Sprintf("batch-%d", i)).Save(ctx)
		require.NoError(t, err)
		b.batches = append(b.batches, bt)
		items := make([]execution.NewItem, size)
		for j := range items {
			items[j] = execution.NewItem{SequenceNumber: int32(j), Payload: json.RawMessage(fmt.Sprintf(`{"n": %d}`, j))}
		}
		n, err := b.exec.AddItems(ctx, bt.ID, execution.Items(items))
		require.NoError(t, err)
		require.EqualValues(t, size, n)
	}
	return b
}

func TestLifecycleSmoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond}, 3, 2)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: "smoke", MaxAttempts: 2})
	require.NoError(t, err)
	require.Equal(t, runledger.StatusQueued, run.Status)

	p, err := b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 5, p.Counts[runledger.StatusQueued])

	claimed, err := b.exec.Claim(ctx, "w1", 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 5)
	var results []execution.Result
	for _, c := range claimed[1:] {
		results = append(results, execution.Result{ID: c.ID, Payload: json.RawMessage(`{"ok":true}`)})
	}
	rep, err := b.exec.Complete(ctx, "w1", results)
	require.NoError(t, err)
	require.Len(t, rep.Succeeded, 4)
	rep, err = b.exec.Fail(ctx, "w1", []execution.Failure{{ID: claimed[0].ID, Error: "boom"}})
	require.NoError(t, err)
	require.Len(t, rep.Retrying, 1)
	time.Sleep(10 * time.Millisecond)
	again, err := b.exec.Claim(ctx, "w2", 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.EqualValues(t, 2, again[0].Attempt)
	rep, err = b.exec.Fail(ctx, "w2", []execution.Failure{{ID: again[0].ID, Error: "boom again"}})
	require.NoError(t, err)
	require.Len(t, rep.Failed, 1)

	p, err = b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusFailed, p.Status)
	require.EqualValues(t, 4, p.Counts[runledger.StatusSucceeded])
	require.EqualValues(t, 1, p.Counts[runledger.StatusFailed])
	r, err := b.db.Run.Get(ctx, run.ID)
	require.NoError(t, err)
	require.NotNil(t, r.ErrorSummary)
	t.Log(*r.ErrorSummary)
}
