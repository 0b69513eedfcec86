package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/runledgertest"
)

// Add items to a batch, start a run over them, and work it: claim a few
// items under a lease, report them done, read the progress.
func ExampleClient() {
	ctx := context.Background()
	url, drop, err := runledgertest.Database(ctx, true) // stands for your DATABASE_URL
	if err != nil {
		fmt.Println(err)
		return
	}
	defer drop()
	d, err := db.Open(ctx, db.Config{URL: url})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	exec := execution.New(d, execution.Options{})
	defer func() { _ = exec.Close() }()

	a, err := d.Automation.Create().SetName("invoices").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := d.Batch.Create().SetAutomation(a).SetName("2026-12").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	var items []execution.NewItem
	for i := range 5 {
		items = append(items, execution.NewItem{SequenceNumber: int32(i), Payload: json.RawMessage(fmt.Sprintf(`{"invoice": "INV-%d"}`, 100+i))})
	}
	n, err := exec.AddItems(ctx, b.ID, execution.Items(items)) // COPY, validated against the item schema
	if err != nil {
		fmt.Println(err)
		return
	}
	run, err := exec.StartRun(ctx, a.ID, execution.StartOptions{MaxAttempts: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("added", n, "items; run", run.Status)

	claimed, err := exec.Claim(ctx, "worker-1", 10, time.Minute) // up to 10, SKIP LOCKED, under a lease
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("worker-1 claimed", len(claimed))
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].SequenceNumber < claimed[j].SequenceNumber })
	var done []execution.Result
	for _, c := range claimed[:3] {
		var p struct{ Invoice string }
		if err := json.Unmarshal(c.Payload, &p); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("worker-1 books", p.Invoice, "attempt", c.Attempt)
		done = append(done, execution.Result{ID: c.ID, Attempt: c.Attempt, Payload: json.RawMessage(`{"booked": true}`)})
	}
	rep, err := exec.Complete(ctx, "worker-1", done)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("succeeded:", len(rep.Succeeded))

	p, err := exec.Progress(ctx, run.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("run %s: %d of %d finished\n", p.Status, p.Counts.Finished(), p.Counts.Total())
	// Output:
	// added 5 items; run queued
	// worker-1 claimed 5
	// worker-1 books INV-100 attempt 1
	// worker-1 books INV-101 attempt 1
	// worker-1 books INV-102 attempt 1
	// succeeded: 3
	// run running: 3 of 5 finished
}
