package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/mixin"
)

// StatusCount is an append-only counter of item executions by status: the
// database's item_execution triggers insert one row per (batch execution,
// status) that a statement changed, with the change in count (+n or -n).
// Progress sums them, so counting a run never scans its items and no
// completion locks a shared counter row; execution.Progress compacts them.
// Not part of the specification's model: added for progress at scale.
type StatusCount struct{ ent.Schema }

// Mixin of the StatusCount.
func (StatusCount) Mixin() []ent.Mixin { return []ent.Mixin{mixin.Errors{}} }

// Fields of the StatusCount.
func (StatusCount) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.UUID("run_id", uuidType()).Immutable(),
		fk("batch_execution_id"),
		field.Enum("status").GoType(runledger.ExecutionStatus("")).Immutable(),
		field.Int64("delta").Immutable(),
	}
}

// Edges of the StatusCount.
func (StatusCount) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("batch_execution", BatchExecution.Type).Ref("status_counts").
			Field("batch_execution_id").Unique().Required().Immutable(),
	}
}

// Indexes of the StatusCount.
func (StatusCount) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id"),
		index.Fields("batch_execution_id"),
	}
}

// Annotations of the StatusCount: its table name.
func (StatusCount) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("status_count")}
}
