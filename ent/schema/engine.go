package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/runledger/runledger/mixin"
)

// Engine is an external orchestration system (Jenkins, Argo, Temporal, ...).
type Engine struct{ ent.Schema }

// Mixin of the Engine.
func (Engine) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the Engine.
func (Engine) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("name").Validate(mixin.MaxChars(100)).SchemaType(mixin.Varchar(100)).NotEmpty().Unique(),
		field.String("type").Validate(mixin.MaxChars(50)).SchemaType(mixin.Varchar(50)).NotEmpty(),
	}
}

// Edges of the Engine.
func (Engine) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("instances", OrchestrationInstance.Type).Annotations(cascade()),
	}
}

// Annotations of the Engine: its table name.
func (Engine) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("engine")}
}
