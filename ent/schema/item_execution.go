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

// ItemExecution is the execution of one item within a run, with retries.
type ItemExecution struct{ ent.Schema }

// Mixin of the ItemExecution.
func (ItemExecution) Mixin() []ent.Mixin {
	return mixin.Entity(mixin.StatusTracking{}, mixin.Retryable{})
}

// Fields of the ItemExecution.
func (ItemExecution) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("run_id"),
		fk("batch_execution_id"),
		fk("item_id"),
		field.JSON("result_payload", map[string]any{}).Optional(),
		field.Text("error_message").Optional().Nillable(),
		field.Bool("retryable").Default(true),
	}
}

// Edges of the ItemExecution.
func (ItemExecution) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", Run.Type).Ref("item_executions").
			Field("run_id").Unique().Required().Immutable(),
		edge.From("batch_execution", BatchExecution.Type).Ref("item_executions").
			Field("batch_execution_id").Unique().Required().Immutable(),
		edge.From("item", Item.Type).Ref("executions").
			Field("item_id").Unique().Required().Immutable(),
		edge.To("history", ItemStateHistory.Type).Annotations(cascade()),
	}
}

// Indexes of the ItemExecution.
func (ItemExecution) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id", "item_id").Unique(),
		index.Fields("batch_execution_id"),
		index.Fields("item_id"),
	}
}

// Annotations of the ItemExecution: its table name.
func (ItemExecution) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("item_execution")}
}
