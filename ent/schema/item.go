package schema

import (
	"context"

	"github.com/runledger/runledger/ent/hook"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	gen "github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/item"
	"github.com/runledger/runledger/mixin"
)

// Item is one unit of work within a batch, at a position (sequence_number).
type Item struct{ ent.Schema }

// Mixin of the Item.
func (Item) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the Item.
func (Item) Fields() []ent.Field {
	return []ent.Field{
		timeOrderedID(),
		fk("batch_id"),
		field.Int32("sequence_number").NonNegative(),
		field.JSON("payload", map[string]any{}).Optional(),
	}
}

// Edges of the Item.
func (Item) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("batch", Batch.Type).Ref("items").
			Field("batch_id").Unique().Required().Immutable(),
		edge.To("executions", ItemExecution.Type).Annotations(cascade()),
	}
}

// Indexes of the Item.
func (Item) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("batch_id", "sequence_number").Unique(),
	}
}

// Annotations of the Item: its table name and CHECK constraints.
func (Item) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("item"),
		entsql.Checks(map[string]string{
			"ck_sequence_number_nonnegative": "sequence_number >= 0",
		}),
	}
}

// Interceptors of the Item: items come ordered by sequence_number, in
// queries, traversals (batch.QueryItems) and eager loads (WithItems), unless
// the query sets an order of its own.
func (Item) Interceptors() []ent.Interceptor {
	return []ent.Interceptor{
		ent.InterceptFunc(func(next ent.Querier) ent.Querier {
			return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
				iq, ok := q.(*gen.ItemQuery)
				if ok && !iq.Ordered() && rowsQuery(ctx) {
					iq.Order(gen.Asc(item.FieldSequenceNumber))
				}
				return next.Query(ctx, q)
			})
		}),
	}
}

// rowsQuery reports whether the query returns whole rows (All, First, Only),
// where an ORDER BY is meaningful; counts and id selections may not take one.
func rowsQuery(ctx context.Context) bool {
	qc := ent.QueryFromContext(ctx)
	if qc == nil {
		return false
	}
	switch qc.Op {
	case ent.OpQueryAll, ent.OpQueryFirst, ent.OpQueryOnly:
		return true
	}
	return false
}

// Hooks of the Item: payload validation (payload.go).
func (Item) Hooks() []ent.Hook {
	return []ent.Hook{hook.On(validateItemPayload, ent.OpCreate|ent.OpUpdateOne)}
}
