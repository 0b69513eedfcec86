package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger/mixin"
)

// RunOrchestration links a run to an orchestration instance.
type RunOrchestration struct{ ent.Schema }

// Mixin of the RunOrchestration.
func (RunOrchestration) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the RunOrchestration.
func (RunOrchestration) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("run_id"),
		fk("orchestration_instance_id"),
		field.Time("attached_at").Default(time.Now).
			Annotations(entsql.Default("CURRENT_TIMESTAMP")),
	}
}

// Edges of the RunOrchestration.
func (RunOrchestration) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", Run.Type).Ref("orchestrations").
			Field("run_id").Unique().Required().Immutable(),
		edge.From("orchestration_instance", OrchestrationInstance.Type).Ref("runs").
			Field("orchestration_instance_id").Unique().Required().Immutable(),
	}
}

// Indexes of the RunOrchestration.
func (RunOrchestration) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id", "orchestration_instance_id").Unique(),
		index.Fields("orchestration_instance_id"),
	}
}

// Annotations of the RunOrchestration: its table name.
func (RunOrchestration) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("run_orchestration")}
}
