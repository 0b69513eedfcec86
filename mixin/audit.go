package mixin

import (
	"context"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	entmixin "entgo.io/ent/schema/mixin"

	"github.com/runledger/runledger"
)

// Audit adds created_by and updated_by, varchar(100) null, filled from the
// acting user that runledger.WithActor puts in the context. A create without
// an actor leaves both NULL; an update without one clears updated_by, so the
// column never names someone who did not make the last change.
type Audit struct{ entmixin.Schema }

// Fields of the Audit mixin.
func (Audit) Fields() []ent.Field {
	return []ent.Field{
		field.String("created_by").Validate(MaxChars(100)).SchemaType(Varchar(100)).Optional().Nillable().Immutable(),
		field.String("updated_by").Validate(MaxChars(100)).SchemaType(Varchar(100)).Optional().Nillable(),
	}
}

// Hooks of the Audit mixin.
func (Audit) Hooks() []ent.Hook {
	return []ent.Hook{AuditHook}
}

// AuditHook records the acting user on creates and updates. It is exported so
// that schemas with only created_by (item_state_history) can reuse it.
func AuditHook(next ent.Mutator) ent.Mutator {
	return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
		actor, ok := runledger.ActorFrom(ctx)
		switch {
		case m.Op().Is(ent.OpCreate):
			if ok {
				if _, set := m.Field("created_by"); !set {
					_ = m.SetField("created_by", actor)
				}
				if _, set := m.Field("updated_by"); !set {
					_ = m.SetField("updated_by", actor)
				}
			}
		case m.Op().Is(ent.OpUpdate | ent.OpUpdateOne):
			if _, set := m.Field("updated_by"); set {
				break
			}
			if ok {
				_ = m.SetField("updated_by", actor)
			} else {
				_ = m.ClearField("updated_by")
			}
		}
		return next.Mutate(ctx, m)
	})
}
