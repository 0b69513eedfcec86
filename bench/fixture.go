package main

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// itemSchema is the automation's item_schema when -schema is on: what
// AddItems validates every payload against.
var itemSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"n":    map[string]any{"type": "integer", "minimum": 0},
		"name": map[string]any{"type": "string", "maxLength": 64},
	},
	"required": []any{"n", "name"},
}

// payload is item n's payload, about 30 bytes: {"n":42,"name":"item-0000042"}.
func payload(n int) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"name":"item-`...)
	b = fmt.Appendf(b, "%07d", n)
	return append(b, `"}`...)
}

// generate yields n items, built one at a time: nothing is materialized.
func generate(n int) iter.Seq2[execution.NewItem, error] {
	return func(yield func(execution.NewItem, error) bool) {
		for i := range n {
			if !yield(execution.NewItem{SequenceNumber: int32(i), Payload: json.RawMessage(payload(i))}, nil) {
				return
			}
		}
	}
}

// newAutomation creates an automation (with the item schema if withSchema)
// and batches empty batches, returning their ids.
func newAutomation(ctx context.Context, d *db.DB, name string, withSchema bool, batches int) (uuid.UUID, []uuid.UUID, error) {
	c := d.Automation.Create().SetName(name)
	if withSchema {
		c.SetItemSchema(itemSchema)
	}
	a, err := c.Save(ctx)
	if err != nil {
		return uuid.Nil, nil, err
	}
	ids := make([]uuid.UUID, batches)
	for i := range ids {
		b, err := d.Batch.Create().SetAutomationID(a.ID).SetName(fmt.Sprintf("batch-%03d", i)).Save(ctx)
		if err != nil {
			return uuid.Nil, nil, err
		}
		ids[i] = b.ID
	}
	return a.ID, ids, nil
}

// fill adds n items to each batch through AddItems.
func fill(ctx context.Context, x *execution.Client, batches []uuid.UUID, n int) error {
	for _, b := range batches {
		got, err := x.AddItems(ctx, b, generate(n))
		if err != nil {
			return err
		}
		if got != int64(n) {
			return fmt.Errorf("AddItems added %d of %d items", got, n)
		}
	}
	return nil
}

// burnFixture is a scratch database holding one automation with n items in
// one batch; queue starts a fresh run over them (dropping earlier runs) and
// is called untimed before each round.
type burnFixture struct {
	d     *db.DB
	x     *execution.Client
	auto  uuid.UUID
	queue func(context.Context) error
}

// newBurnFixture makes the scratch database name with a pool of conns
// connections and fills it with b.cfg.burnN items. Close d when done.
func (b *bench) newBurnFixture(ctx context.Context, name string, conns int) (*burnFixture, error) {
	d, _, err := b.scratch.runledger(ctx, name, conns)
	if err != nil {
		return nil, err
	}
	f := &burnFixture{d: d, x: execution.New(d, execution.Options{})}
	auto, batches, err := newAutomation(ctx, d, name, b.cfg.schema, 1)
	if err == nil {
		err = fill(ctx, f.x, batches, b.cfg.burnN)
	}
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	f.auto = auto
	f.queue = func(ctx context.Context) error {
		if err := truncate(ctx, d.SQL(), "run"); err != nil {
			return err
		}
		if _, err := f.x.StartRun(ctx, auto, execution.StartOptions{}); err != nil {
			return err
		}
		return analyze(ctx, d.SQL())
	}
	return f, nil
}
