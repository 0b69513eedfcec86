package schema_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/automation"
	"github.com/runledger/runledger/ent/batch"
	"github.com/runledger/runledger/ent/item"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
)

func TestTraversals(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	g := fixture.Build(t, ctx, client, fixture.Options{Batches: 2, ItemsPerBatch: 3})
	other := fixture.Build(t, ctx, client, fixture.Options{Batches: 1, ItemsPerBatch: 1})

	t.Run("down with eager loading", func(t *testing.T) {
		t.Parallel()
		a, err := client.Automation.Query().
			Where(automation.ID(g.Automation.ID)).
			WithBatches(func(q *ent.BatchQuery) { q.WithItems().Order(ent.Asc(batch.FieldName)) }).
			WithRuns(func(q *ent.RunQuery) {
				q.WithBatchExecutions(func(q *ent.BatchExecutionQuery) { q.WithItemExecutions() })
			}).
			Only(ctx)
		require.NoError(t, err)
		require.Len(t, a.Edges.Batches, 2)
		for i, b := range a.Edges.Batches {
			require.Len(t, b.Edges.Items, 3)
			for j, it := range b.Edges.Items {
				require.EqualValues(t, j, it.SequenceNumber, "items of a batch come ordered by sequence_number")
				require.Equal(t, g.Items[i][j].ID, it.ID)
			}
		}
		require.Len(t, a.Edges.Runs, 1)
		require.Len(t, a.Edges.Runs[0].Edges.BatchExecutions, 2)
		total := 0
		for _, be := range a.Edges.Runs[0].Edges.BatchExecutions {
			total += len(be.Edges.ItemExecutions)
		}
		require.Equal(t, 6, total)
	})

	t.Run("down by traversal", func(t *testing.T) {
		t.Parallel()
		items, err := client.Automation.QueryBatches(g.Automation).Where(batch.Name("batch-b")).QueryItems().All(ctx)
		require.NoError(t, err)
		require.Len(t, items, 3)
		for j, it := range items {
			require.EqualValues(t, j, it.SequenceNumber)
		}
		n, err := client.Run.QueryItemExecutions(g.Run).Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 6, n)
		desc, err := client.Batch.QueryItems(g.Batches[0]).Order(ent.Desc(item.FieldSequenceNumber)).All(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, desc[0].SequenceNumber, "an explicit order wins over the default")
		ids, err := client.Batch.QueryItems(g.Batches[0]).IDs(ctx)
		require.NoError(t, err)
		require.Len(t, ids, 3)
	})

	t.Run("up", func(t *testing.T) {
		t.Parallel()
		ie := g.ItemExecutions[4]
		a, err := client.ItemExecution.QueryRun(ie).QueryAutomation().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, g.Automation.ID, a.ID)
		b, err := client.ItemExecution.QueryItem(ie).QueryBatch().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, g.Batches[1].ID, b.ID)
		got, err := client.ItemExecution.Query().Where(itemexecution.ID(ie.ID)).
			WithRun(func(q *ent.RunQuery) { q.WithAutomation() }).
			WithBatchExecution(func(q *ent.BatchExecutionQuery) { q.WithBatch() }).
			WithItem().
			Only(ctx)
		require.NoError(t, err)
		require.Equal(t, g.Automation.ID, got.Edges.Run.Edges.Automation.ID)
		require.Equal(t, g.Batches[1].ID, got.Edges.BatchExecution.Edges.Batch.ID)
		require.Equal(t, ie.ItemID, got.Edges.Item.ID)
		runs, err := client.Run.Query().Where(run.HasAutomationWith(automation.ID(other.Automation.ID))).All(ctx)
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, other.Run.ID, runs[0].ID)
	})

	t.Run("orchestration both ways", func(t *testing.T) {
		t.Parallel()
		eng, err := client.Engine.Create().SetName("argo-" + g.Automation.Name).SetType("argo").Save(ctx)
		require.NoError(t, err)
		inst, err := client.OrchestrationInstance.Create().SetEngine(eng).SetExternalID("wf-1").
			SetStatus(runledger.StatusRunning).SetInstanceMetadata(map[string]any{"phase": "Running"}).Save(ctx)
		require.NoError(t, err)
		_, err = client.RunOrchestration.Create().SetRun(g.Run).SetOrchestrationInstance(inst).Save(ctx)
		require.NoError(t, err)
		r, err := client.OrchestrationInstance.QueryRuns(inst).QueryRun().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, g.Run.ID, r.ID)
		e, err := client.Run.QueryOrchestrations(g.Run).QueryOrchestrationInstance().QueryEngine().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, eng.ID, e.ID)
	})
}

func TestHistoryImmutable(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	g := fixture.Build(t, ctx, client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	ie := g.ItemExecutions[0]
	h, err := client.ItemStateHistory.Create().SetItemExecution(ie).
		SetPreviousStatus(runledger.StatusQueued).SetNewStatus(runledger.StatusRunning).
		Save(runledger.WithActor(ctx, "worker-1"))
	require.NoError(t, err)
	require.Equal(t, "worker-1", *h.CreatedBy)

	_, err = client.ItemStateHistory.UpdateOne(h).Save(ctx)
	require.ErrorIs(t, err, runledger.ErrImmutable)
	err = client.ItemStateHistory.DeleteOne(h).Exec(ctx)
	require.ErrorIs(t, err, runledger.ErrImmutable)
	_, err = client.ItemStateHistory.Delete().Exec(runledger.WithHardDelete(ctx))
	require.ErrorIs(t, err, runledger.ErrImmutable)

	// The cascade from the item execution still removes it.
	require.NoError(t, client.ItemExecution.DeleteOne(ie).Exec(runledger.WithHardDelete(ctx)))
	n, err := client.ItemStateHistory.Query().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
