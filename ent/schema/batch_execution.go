package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger/mixin"
)

// BatchExecution is the execution of one batch within a run.
type BatchExecution struct{ ent.Schema }

// Mixin of the BatchExecution.
func (BatchExecution) Mixin() []ent.Mixin { return mixin.Entity(mixin.StatusTracking{}) }

// Fields of the BatchExecution.
func (BatchExecution) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("run_id"),
		fk("batch_id"),
	}
}

// Edges of the BatchExecution.
func (BatchExecution) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", Run.Type).Ref("batch_executions").
			Field("run_id").Unique().Required().Immutable(),
		edge.From("batch", Batch.Type).Ref("executions").
			Field("batch_id").Unique().Required().Immutable(),
		edge.To("item_executions", ItemExecution.Type).Annotations(cascade()),
		edge.To("status_counts", StatusCount.Type).Annotations(cascade()),
	}
}

// Indexes of the BatchExecution.
func (BatchExecution) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id", "batch_id").Unique(),
		index.Fields("batch_id"),
	}
}

// Annotations of the BatchExecution: its table name.
func (BatchExecution) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("batch_execution")}
}
