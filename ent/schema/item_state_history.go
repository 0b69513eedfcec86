package schema

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/mixin"
)

// ItemStateHistory is one recorded status change of an item execution. It is
// immutable: no version, no soft delete, no updated_*; the client refuses to
// update or delete it and so does the database.
type ItemStateHistory struct{ ent.Schema }

// Mixin of the ItemStateHistory: only error translation; its few audit
// fields are declared below.
func (ItemStateHistory) Mixin() []ent.Mixin { return []ent.Mixin{mixin.Errors{}} }

// Fields of the ItemStateHistory.
func (ItemStateHistory) Fields() []ent.Field {
	return []ent.Field{
		timeOrderedID(),
		fk("item_execution_id"),
		field.Enum("previous_status").GoType(runledger.ExecutionStatus("")).Optional().Nillable().Immutable(),
		field.Enum("new_status").GoType(runledger.ExecutionStatus("")).Immutable(),
		field.Time("changed_at").Default(time.Now).Immutable().
			Annotations(entsql.Default("CURRENT_TIMESTAMP")),
		field.Time("created_at").Default(time.Now).Immutable().
			Annotations(entsql.Default("CURRENT_TIMESTAMP")),
		field.String("created_by").Validate(mixin.MaxChars(100)).SchemaType(mixin.Varchar(100)).Optional().Nillable().Immutable(),
	}
}

// Edges of the ItemStateHistory.
func (ItemStateHistory) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("item_execution", ItemExecution.Type).Ref("history").
			Field("item_execution_id").Unique().Required().Immutable(),
	}
}

// Indexes of the ItemStateHistory.
func (ItemStateHistory) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("item_execution_id", "changed_at"),
	}
}

// Annotations of the ItemStateHistory: its table name and CHECK constraints.
func (ItemStateHistory) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("item_state_history"),
		entsql.Checks(map[string]string{
			"ck_previous_status_valid": mixin.StatusCheck("previous_status"),
			"ck_new_status_valid":      mixin.StatusCheck("new_status"),
		}),
	}
}

// Hooks of the ItemStateHistory: rows are written by the database's history
// trigger (or created through the client) and never changed afterwards.
func (ItemStateHistory) Hooks() []ent.Hook {
	return []ent.Hook{
		mixin.AuditHook,
		func(next ent.Mutator) ent.Mutator {
			return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
				if m.Op().Is(ent.OpUpdate | ent.OpUpdateOne | ent.OpDelete | ent.OpDeleteOne) {
					return nil, fmt.Errorf("%w: item_state_history rows cannot be %s", runledger.ErrImmutable, opVerb(m.Op()))
				}
				return next.Mutate(ctx, m)
			})
		},
	}
}

func opVerb(op ent.Op) string {
	if op.Is(ent.OpDelete | ent.OpDeleteOne) {
		return "deleted"
	}
	return "updated"
}
