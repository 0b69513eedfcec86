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

// OrchestrationInstance is one workflow instance in an external engine.
type OrchestrationInstance struct{ ent.Schema }

// Mixin of the OrchestrationInstance.
func (OrchestrationInstance) Mixin() []ent.Mixin {
	return mixin.Entity(mixin.StatusTracking{})
}

// Fields of the OrchestrationInstance.
func (OrchestrationInstance) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("engine_id"),
		field.String("external_id").Validate(mixin.MaxChars(200)).SchemaType(mixin.Varchar(200)).NotEmpty(),
		field.Int32("duration_seconds").Optional().Nillable().NonNegative(),
		field.JSON("instance_metadata", map[string]any{}).Optional(),
	}
}

// Edges of the OrchestrationInstance.
func (OrchestrationInstance) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("engine", Engine.Type).Ref("instances").
			Field("engine_id").Unique().Required().Immutable(),
		edge.To("runs", RunOrchestration.Type).Annotations(cascade()),
	}
}

// Indexes of the OrchestrationInstance.
func (OrchestrationInstance) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("engine_id", "external_id").Unique(),
		index.Fields("status", "started_at"),
	}
}

// Annotations of the OrchestrationInstance: its table name and CHECK constraints.
func (OrchestrationInstance) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("orchestration_instance"),
		entsql.Checks(map[string]string{
			"ck_duration_seconds_nonnegative": "duration_seconds IS NULL OR duration_seconds >= 0",
		}),
	}
}
