package runledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/batchexecution"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/runledgertest"
)

// databaseURL stands for your DATABASE_URL in the examples: a database
// migrated by runledger's migrations (TestMain makes a fresh one).
var databaseURL string

func TestMain(m *testing.M) {
	url, drop, err := runledgertest.Database(context.Background(), true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	databaseURL = url
	code := m.Run()
	drop()
	os.Exit(code)
}

// An update from a stale read loses: UpdateOne(entity) checks the version the
// entity was read at, and UpdateOneID checks the one given by ExpectVersion.
func Example_optimisticLock() {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: databaseURL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	a, err := d.Automation.Create().SetName("example-optimistic-lock").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	mine, theirs := a, a // two readers of version 1
	theirs, err = d.Automation.UpdateOne(theirs).SetDescription("theirs").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("theirs saved at version", theirs.Version)
	_, err = d.Automation.UpdateOne(mine).SetDescription("mine").Save(ctx)
	fmt.Println("mine is stale:", errors.Is(err, runledger.ErrStale))

	// By ID, with the version a client sent back.
	_, err = d.Automation.UpdateOneID(a.ID).SetDescription("by ID").Save(runledger.ExpectVersion(ctx, 1))
	fmt.Println("by ID at version 1 is stale:", errors.Is(err, runledger.ErrStale))
	a, err = d.Automation.UpdateOneID(a.ID).SetDescription("by ID").Save(runledger.ExpectVersion(ctx, 2))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*a.Description, "at version", a.Version)
	// Output:
	// theirs saved at version 2
	// mine is stale: true
	// by ID at version 1 is stale: true
	// by ID at version 3
}

// A soft-deleted batch is gone from listings and lookups, but the executions
// that ran its items still resolve it.
func Example_softDelete() {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: databaseURL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	exec := execution.New(d, execution.Options{})
	defer func() { _ = exec.Close() }()

	a, err := d.Automation.Create().SetName("example-soft-delete").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := d.Batch.Create().SetAutomation(a).SetName("north").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := exec.AddItems(ctx, b.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0}, {SequenceNumber: 1}})); err != nil {
		fmt.Println(err)
		return
	}
	r, err := exec.StartRun(ctx, a.ID, execution.StartOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}

	if err := d.Batch.DeleteOne(b).Exec(ctx); err != nil { // sets is_active = false
		fmt.Println(err)
		return
	}
	_, err = d.Batch.Get(ctx, b.ID)
	fmt.Println("batch found:", !ent.IsNotFound(err))
	hidden, err := d.Batch.Get(runledger.WithInactive(ctx), b.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("with inactive rows:", hidden.Name, "active:", hidden.IsActive)

	ies, err := d.ItemExecution.Query().Where(itemexecution.RunID(r.ID)).
		WithItem(func(q *ent.ItemQuery) { q.WithBatch() }).
		Order(itemexecution.ByItemField("sequence_number")).All(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ie := range ies {
		it := ie.Edges.Item
		fmt.Printf("item #%d of batch %s (active: %t) [%s]\n", it.SequenceNumber, it.Edges.Batch.Name, it.Edges.Batch.IsActive, ie.Status)
	}
	// Output:
	// batch found: false
	// with inactive rows: north active: false
	// item #0 of batch north (active: false) [queued]
	// item #1 of batch north (active: false) [queued]
}

// A run loaded as a graph: its automation and its batch executions with
// their batches by eager loading (one query per level), then each batch
// execution's items counted by a traversal.
func Example_eagerLoading() {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: databaseURL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	exec := execution.New(d, execution.Options{})
	defer func() { _ = exec.Close() }()

	a, err := d.Automation.Create().SetName("example-eager-loading").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"north", "south"} {
		b, err := d.Batch.Create().SetAutomation(a).SetName(name).Save(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if _, err := exec.AddItems(ctx, b.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0}, {SequenceNumber: 1}, {SequenceNumber: 2}})); err != nil {
			fmt.Println(err)
			return
		}
	}
	started, err := exec.StartRun(ctx, a.ID, execution.StartOptions{CorrelationID: "nightly-42"})
	if err != nil {
		fmt.Println(err)
		return
	}

	r, err := d.Run.Query().Where(run.ID(started.ID)).
		WithAutomation().
		WithBatchExecutions(func(q *ent.BatchExecutionQuery) {
			q.WithBatch().Order(batchexecution.ByBatchField("name"))
		}).
		Only(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: run %s [%s]\n", r.Edges.Automation.Name, *r.CorrelationID, r.Status)
	for _, be := range r.Edges.BatchExecutions {
		n, err := be.QueryItemExecutions().Count(ctx) // a traversal
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("  batch %s [%s]: %d items\n", be.Edges.Batch.Name, be.Status, n)
	}
	// Output:
	// example-eager-loading: run nightly-42 [queued]
	//   batch north [queued]: 3 items
	//   batch south [queued]: 3 items
}
