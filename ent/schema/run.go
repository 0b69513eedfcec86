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

// Run is one execution of an automation.
type Run struct{ ent.Schema }

// Mixin of the Run.
func (Run) Mixin() []ent.Mixin { return mixin.Entity(mixin.StatusTracking{}) }

// Fields of the Run.
func (Run) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("automation_id"),
		field.String("correlation_id").Validate(mixin.MaxChars(100)).SchemaType(mixin.Varchar(100)).Optional().Nillable(),
		field.Text("cancellation_reason").Optional().Nillable(),
		field.Text("error_summary").Optional().Nillable(),
	}
}

// Edges of the Run.
func (Run) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("automation", Automation.Type).Ref("runs").
			Field("automation_id").Unique().Required().Immutable(),
		edge.To("batch_executions", BatchExecution.Type).Annotations(cascade()),
		edge.To("item_executions", ItemExecution.Type).Annotations(cascade()),
		edge.To("orchestrations", RunOrchestration.Type).Annotations(cascade()),
	}
}

// Indexes of the Run.
func (Run) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("automation_id"),
		index.Fields("correlation_id"),
		index.Fields("started_at", "status"),
	}
}

// Annotations of the Run: its table name.
func (Run) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("run")}
}
