package mixin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/automation"
	"github.com/runledger/runledger/ent/batch"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
)

func TestAuditActor(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()

	anon, err := client.Automation.Create().SetName("anon").Save(ctx)
	require.NoError(t, err)
	require.Nil(t, anon.CreatedBy)
	require.Nil(t, anon.UpdatedBy)

	alice := runledger.WithActor(ctx, "alice")
	a, err := client.Automation.Create().SetName("audited").Save(alice)
	require.NoError(t, err)
	require.Equal(t, "alice", *a.CreatedBy)
	require.Equal(t, "alice", *a.UpdatedBy)

	a, err = client.Automation.UpdateOne(a).SetDescription("by bob").Save(runledger.WithActor(ctx, "bob"))
	require.NoError(t, err)
	require.Equal(t, "alice", *a.CreatedBy)
	require.Equal(t, "bob", *a.UpdatedBy)

	// An update without an actor does not leave bob's name on it.
	a, err = client.Automation.UpdateOne(a).SetDescription("anonymous").Save(ctx)
	require.NoError(t, err)
	require.Nil(t, a.UpdatedBy)
	got, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Nil(t, got.UpdatedBy)
	require.Equal(t, "alice", *got.CreatedBy)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()

	a, err := client.Automation.Create().SetName("versioned").Save(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, a.Version)

	// Two readers of version 1: the first update wins, the second is stale.
	first, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	second, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)

	first, err = client.Automation.UpdateOne(first).SetDescription("first").Save(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, first.Version)

	_, err = client.Automation.UpdateOne(second).SetDescription("second").Save(ctx)
	require.ErrorIs(t, err, runledger.ErrStale)
	var stale *runledger.StaleError
	require.ErrorAs(t, err, &stale)
	require.EqualValues(t, 1, stale.Version)
	require.Equal(t, a.ID.String(), stale.ID)

	got, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, "first", *got.Description)
	require.EqualValues(t, 2, got.Version)

	// A fresh read updates fine, and updated_at moves.
	got2, err := client.Automation.UpdateOne(got).SetDescription("third").Save(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, got2.Version)
	require.True(t, got2.UpdatedAt.After(a.UpdatedAt))

	// A bulk update bumps every row it touches once.
	n, err := client.Automation.Update().Where(automation.ID(a.ID)).SetDescription("bulk").Save(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.EqualValues(t, 4, got.Version)
}

func TestExpectVersion(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	a, err := client.Automation.Create().SetName("expect-a").Save(ctx)
	require.NoError(t, err)
	b, err := client.Automation.Create().SetName("expect-b").Save(ctx)
	require.NoError(t, err)

	// By ID at the version a client sent back: applies once.
	at1 := runledger.ExpectVersion(ctx, 1)
	a2, err := client.Automation.UpdateOneID(a.ID).SetDescription("first").Save(at1)
	require.NoError(t, err)
	require.EqualValues(t, 2, a2.Version)
	_, err = client.Automation.UpdateOneID(a.ID).SetDescription("lost update").Save(at1)
	var se *runledger.StaleError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, runledger.ErrStale)
	require.EqualValues(t, 1, se.Version)
	got, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, "first", *got.Description)
	require.EqualValues(t, 2, got.Version)

	// The expected version wins over the one the entity carries.
	_, err = client.Automation.UpdateOne(a).SetDescription("stale entity").Save(runledger.ExpectVersion(ctx, 2))
	require.NoError(t, err)

	// A bulk update changes only the rows at the expected version.
	n, err := client.Automation.Update().Where(automation.IDIn(a.ID, b.ID)).SetDescription("bulk").Save(at1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = client.Automation.Get(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, "bulk", *got.Description)
	require.EqualValues(t, 2, got.Version)
}

func TestVersionRace(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	a, err := client.Automation.Create().SetName("raced").Save(ctx)
	require.NoError(t, err)

	const workers = 16
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		wins, stales int
	)
	start := make(chan struct{})
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := client.Automation.UpdateOne(a).SetDescription("racer").Save(ctx)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case runledgerIsStale(err):
				stales++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, 1, wins, "all racers read version 1: exactly one may win")
	require.Equal(t, workers-1, stales)
	got, err := client.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Version)
}

func runledgerIsStale(err error) bool {
	var s *runledger.StaleError
	return err != nil && errorsAs(err, &s)
}

func TestSoftDelete(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	client := d.Client
	ctx := context.Background()
	g := fixture.Build(t, ctx, client, fixture.Options{Name: "soft"})

	// Delete through the client hides the row, keeps it, and keeps its children.
	require.NoError(t, client.Automation.DeleteOne(g.Automation).Exec(ctx))
	_, err := client.Automation.Get(ctx, g.Automation.ID)
	require.True(t, ent.IsNotFound(err), "soft-deleted rows are hidden: %v", err)
	hidden, err := client.Automation.Get(runledger.WithInactive(ctx), g.Automation.ID)
	require.NoError(t, err)
	require.False(t, hidden.IsActive)
	require.EqualValues(t, 2, hidden.Version, "a soft delete is an update")
	n, err := client.Batch.Query().Where(batch.AutomationID(g.Automation.ID)).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "soft delete does not cascade")

	// Deleting it again finds nothing, like a hard delete would.
	err = client.Automation.DeleteOne(g.Automation).Exec(ctx)
	require.True(t, ent.IsNotFound(err), "%v", err)

	// The partial unique index lets the name be reused once the old row is inactive,
	// and refuses a second active row with the name.
	again, err := client.Automation.Create().SetName("soft").Save(ctx)
	require.NoError(t, err)
	_, err = client.Automation.Create().SetName("soft").Save(ctx)
	require.Error(t, err)
	require.True(t, ent.IsConstraintError(err) || errorsIs(err, runledger.ErrConflict), "%v", err)

	// Hidden in traversals and eager loads too.
	require.NoError(t, client.Batch.DeleteOne(g.Batches[0]).Exec(ctx))
	a, err := client.Automation.Query().Where(automation.ID(g.Automation.ID)).WithBatches().Only(runledger.WithInactive(ctx))
	require.NoError(t, err)
	require.Len(t, a.Edges.Batches, 2, "WithInactive shows inactive children")
	a, err = client.Automation.Query().Where(automation.ID(again.ID)).Only(ctx)
	require.NoError(t, err)
	bs, err := client.Automation.QueryBatches(hidden).All(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 1, "the traversal hides the soft-deleted batch")
	withB, err := client.Automation.Query().Where(automation.ID(g.Automation.ID)).WithBatches().Only(runledger.WithInactive(ctx))
	require.NoError(t, err)
	require.Len(t, withB.Edges.Batches, 2)
	runs, err := client.Run.Query().WithAutomation().All(ctx)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.NotNil(t, runs[0].Edges.Automation, "a run resolves its soft-deleted automation")
	require.False(t, runs[0].Edges.Automation.IsActive)

	// A hard delete removes the row and the database cascades to every child.
	hard := runledger.WithHardDelete(ctx)
	require.NoError(t, client.Automation.DeleteOneID(g.Automation.ID).Exec(hard))
	all := runledger.WithInactive(ctx)
	for name, count := range map[string]func() (int, error){
		"automation":      func() (int, error) { return client.Automation.Query().Where(automation.ID(g.Automation.ID)).Count(all) },
		"batch":           func() (int, error) { return client.Batch.Query().Count(all) },
		"item":            func() (int, error) { return client.Item.Query().Count(all) },
		"run":             func() (int, error) { return client.Run.Query().Count(all) },
		"batch_execution": func() (int, error) { return client.BatchExecution.Query().Count(all) },
		"item_execution":  func() (int, error) { return client.ItemExecution.Query().Count(all) },
	} {
		n, err := count()
		require.NoError(t, err)
		require.Zero(t, n, name)
	}
	require.NotNil(t, a)
}

// TestExecutionRecordsResolveDefinitions soft-deletes an automation, a batch
// and an item, then walks from the execution records to them: eager loads
// and traversals return them (inactive), listings still hide them.
func TestExecutionRecordsResolveDefinitions(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	g := fixture.Build(t, ctx, client, fixture.Options{Batches: 2, ItemsPerBatch: 5})
	require.NoError(t, client.Automation.DeleteOne(g.Automation).Exec(ctx))
	require.NoError(t, client.Batch.DeleteOne(g.Batches[0]).Exec(ctx))
	require.NoError(t, client.Item.DeleteOne(g.Items[1][2]).Exec(ctx))

	// Eager loads, nested: every item execution resolves its item and batch.
	ies, err := client.ItemExecution.Query().Where(itemexecution.RunID(g.Run.ID)).
		WithItem(func(q *ent.ItemQuery) { q.WithBatch(func(q *ent.BatchQuery) { q.WithAutomation() }) }).All(ctx)
	require.NoError(t, err)
	require.Len(t, ies, 10)
	inactive := 0
	for _, ie := range ies {
		it := ie.Edges.Item
		require.NotNil(t, it, "item execution %s lost its item", ie.ID)
		require.NotNil(t, it.Edges.Batch, "item %s lost its batch", it.ID)
		require.NotNil(t, it.Edges.Batch.Edges.Automation)
		require.False(t, it.Edges.Batch.Edges.Automation.IsActive)
		if !it.IsActive || !it.Edges.Batch.IsActive {
			inactive++
		}
	}
	require.Equal(t, 6, inactive, "5 items of the deleted batch and 1 deleted item")
	bes, err := client.BatchExecution.Query().WithBatch().All(ctx)
	require.NoError(t, err)
	require.Len(t, bes, 2)
	for _, be := range bes {
		require.NotNil(t, be.Edges.Batch)
	}
	r, err := client.Run.Query().Where(run.ID(g.Run.ID)).WithAutomation().Only(ctx)
	require.NoError(t, err)
	require.NotNil(t, r.Edges.Automation)

	// Traversals to a parent, from an entity and from a query.
	deleted := g.ItemExecutions[7] // batch 1, item 2
	it, err := client.ItemExecution.QueryItem(deleted).Only(ctx)
	require.NoError(t, err)
	require.False(t, it.IsActive)
	b, err := deleted.QueryItem().QueryBatch().Only(ctx)
	require.NoError(t, err)
	require.Equal(t, g.Batches[1].ID, b.ID)
	b, err = client.BatchExecution.QueryBatch(g.BatchExecutions[0]).Only(ctx)
	require.NoError(t, err)
	require.False(t, b.IsActive)
	a, err := client.Run.QueryAutomation(g.Run).Only(ctx)
	require.NoError(t, err)
	require.Equal(t, g.Automation.ID, a.ID)
	n, err := client.ItemExecution.Query().Where(itemexecution.RunID(g.Run.ID)).QueryItem().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	n, err = client.ItemExecution.Query().Where(itemexecution.RunID(g.Run.ID)).QueryItem().QueryBatch().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// Listings, lookups and steps to children still hide them.
	n, err = client.Automation.Query().Where(automation.ID(g.Automation.ID)).Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = client.Batch.Get(ctx, g.Batches[0].ID)
	require.True(t, ent.IsNotFound(err), "%v", err)
	n, err = client.Batch.Query().Where(batch.AutomationID(g.Automation.ID)).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = client.Batch.QueryItems(g.Batches[1]).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n, "the deleted item is hidden from its batch's items")
	n, err = client.Automation.QueryBatches(g.Automation).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestDuration(t *testing.T) {
	t.Parallel()
	client := dbtest.New(t).Client
	ctx := context.Background()
	g := fixture.Build(t, ctx, client, fixture.Options{Batches: 1, ItemsPerBatch: 1})

	_, ok := g.Run.Duration()
	require.False(t, ok, "no started_at, no duration")
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r, err := client.Run.UpdateOne(g.Run).SetStartedAt(start).Save(ctx)
	require.NoError(t, err)
	_, ok = r.Duration()
	require.False(t, ok, "no finished_at, no duration")
	r, err = client.Run.UpdateOne(r).SetFinishedAt(start.Add(90 * time.Second)).Save(ctx)
	require.NoError(t, err)
	d, ok := r.Duration()
	require.True(t, ok)
	require.Equal(t, 90*time.Second, d)
}
