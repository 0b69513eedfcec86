package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger/mixin"
)

// Item is one unit of work within a batch, at a position (sequence_number).
type Item struct{ ent.Schema }

// Mixin of the Item.
func (Item) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the Item.
func (Item) Fields() []ent.Field {
	return []ent.Field{
		id(),
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
