package schema

import (
	"context"
	"fmt"

	"entgo.io/ent"

	"github.com/runledger/runledger"
	gen "github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/batch"
	"github.com/runledger/runledger/ent/hook"
	"github.com/runledger/runledger/internal/payload"
)

// Payload validation on every create path of the client (and UpdateOne):
// an automation's schemas must compile; a batch payload must match the
// automation's batch_schema and an item payload its item_schema. The
// execution API's bulk paths validate the same way with the same cache.

// validateSchemas refuses an automation whose JSON Schemas do not compile.
func validateSchemas(next ent.Mutator) ent.Mutator {
	return hook.AutomationFunc(func(ctx context.Context, m *gen.AutomationMutation) (gen.Value, error) {
		if s, ok := m.BatchSchema(); ok {
			if _, err := payload.Compile("batch_schema", s); err != nil {
				return nil, err
			}
		}
		if s, ok := m.ItemSchema(); ok {
			if _, err := payload.Compile("item_schema", s); err != nil {
				return nil, err
			}
		}
		return next.Mutate(ctx, m)
	})
}

// validateBatchPayload checks a batch payload against batch_schema.
func validateBatchPayload(next ent.Mutator) ent.Mutator {
	return hook.BatchFunc(func(ctx context.Context, m *gen.BatchMutation) (gen.Value, error) {
		p, set := m.Payload()
		if !set && !m.Op().Is(ent.OpCreate) {
			return next.Mutate(ctx, m)
		}
		if err := payload.CheckValue(func() string { n, _ := m.Name(); return fmt.Sprintf("batch %q", n) }, mapOrNil(p)); err != nil {
			return nil, err
		}
		autoID, ok := m.AutomationID()
		if !ok && m.Op().Is(ent.OpUpdateOne) {
			id, err := m.OldAutomationID(ctx)
			if err != nil {
				return nil, err
			}
			autoID, ok = id, true
		}
		if !ok {
			return next.Mutate(ctx, m) // bulk update: the automation is per row
		}
		a, err := m.Client().Automation.Get(runledger.WithInactive(ctx), autoID)
		if err != nil {
			if gen.IsNotFound(err) {
				return next.Mutate(ctx, m) // the foreign key reports it
			}
			return nil, err
		}
		s, err := payload.Compile("automation.batch_schema", a.BatchSchema)
		if err != nil {
			return nil, err
		}
		name, _ := m.Name()
		if err := s.Validate(fmt.Sprintf("batch %q", name), mapOrNil(p)); err != nil {
			return nil, err
		}
		return next.Mutate(ctx, m)
	})
}

// validateItemPayload checks an item payload against item_schema.
func validateItemPayload(next ent.Mutator) ent.Mutator {
	return hook.ItemFunc(func(ctx context.Context, m *gen.ItemMutation) (gen.Value, error) {
		p, set := m.Payload()
		if !set && !m.Op().Is(ent.OpCreate) {
			return next.Mutate(ctx, m)
		}
		if err := payload.CheckValue(func() string { n, _ := m.SequenceNumber(); return fmt.Sprintf("item %d", n) }, mapOrNil(p)); err != nil {
			return nil, err
		}
		batchID, ok := m.BatchID()
		if !ok && m.Op().Is(ent.OpUpdateOne) {
			id, err := m.OldBatchID(ctx)
			if err != nil {
				return nil, err
			}
			batchID, ok = id, true
		}
		if !ok {
			return next.Mutate(ctx, m)
		}
		a, err := m.Client().Batch.Query().Where(batch.ID(batchID)).QueryAutomation().Only(runledger.WithInactive(ctx))
		if err != nil {
			if gen.IsNotFound(err) {
				return next.Mutate(ctx, m)
			}
			return nil, err
		}
		s, err := payload.Compile("automation.item_schema", a.ItemSchema)
		if err != nil {
			return nil, err
		}
		seq, _ := m.SequenceNumber()
		if err := s.Validate(fmt.Sprintf("item %d", seq), mapOrNil(p)); err != nil {
			return nil, err
		}
		return next.Mutate(ctx, m)
	})
}

func mapOrNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}
