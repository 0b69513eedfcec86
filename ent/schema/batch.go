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

// Batch is a named group of items within an automation.
type Batch struct{ ent.Schema }

// Mixin of the Batch.
func (Batch) Mixin() []ent.Mixin { return mixin.Entity() }

// Fields of the Batch.
func (Batch) Fields() []ent.Field {
	return []ent.Field{
		id(),
		fk("automation_id"),
		field.String("name").Validate(mixin.MaxChars(200)).SchemaType(mixin.Varchar(200)).NotEmpty(),
		field.JSON("payload", map[string]any{}).Optional(),
	}
}

// Edges of the Batch.
func (Batch) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("automation", Automation.Type).Ref("batches").
			Field("automation_id").Unique().Required().Immutable(),
		edge.To("items", Item.Type).Annotations(cascade()),
		edge.To("executions", BatchExecution.Type).Annotations(cascade()),
	}
}

// Indexes of the Batch.
func (Batch) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("automation_id", "name").Unique(),
	}
}

// Annotations of the Batch: its table name.
func (Batch) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("batch")}
}

// Hooks of the Batch: payload validation (payload.go).
func (Batch) Hooks() []ent.Hook {
	return []ent.Hook{hook.On(validateBatchPayload, ent.OpCreate|ent.OpUpdateOne)}
}
