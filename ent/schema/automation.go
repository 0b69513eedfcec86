package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/runledger/runledger/ent/hook"

	"github.com/runledger/runledger/mixin"
)

// Automation is the definition of an automated process: the root aggregate of
// its batches, items and runs.
type Automation struct{ ent.Schema }

// Mixin of the Automation.
func (Automation) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the Automation.
func (Automation) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("name").Validate(mixin.MaxChars(200)).SchemaType(mixin.Varchar(200)).NotEmpty(),
		field.Text("description").Optional().Nillable(),
		field.JSON("batch_schema", map[string]any{}).Optional(),
		field.JSON("item_schema", map[string]any{}).Optional(),
	}
}

// Edges of the Automation.
func (Automation) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("batches", Batch.Type).Annotations(cascade()),
		edge.To("runs", Run.Type).Annotations(cascade()),
	}
}

// Indexes of the Automation.
func (Automation) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("name"),
		index.Fields("name").Unique().
			StorageKey("ix_automation_name_active").
			Annotations(entsql.IndexWhere("is_active = true")),
	}
}

// Annotations of the Automation: its table name.
func (Automation) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("automation")}
}

// Hooks of the Automation: payload validation (payload.go).
func (Automation) Hooks() []ent.Hook {
	return []ent.Hook{hook.On(validateSchemas, ent.OpCreate|ent.OpUpdateOne)}
}
