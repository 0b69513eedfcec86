package mixin

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema/field"
	entmixin "entgo.io/ent/schema/mixin"
)

// Timestamp adds created_at and updated_at: timestamptz not null with a server
// default of the current time. The client refreshes updated_at on every
// update, and so does the database's update trigger for every other writer.
type Timestamp struct{ entmixin.Schema }

// Fields of the Timestamp mixin.
func (Timestamp) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").
			Default(time.Now).
			Immutable().
			Annotations(entsql.Default("CURRENT_TIMESTAMP")),
		field.Time("updated_at").
			Default(time.Now).
			UpdateDefault(time.Now).
			Annotations(entsql.Default("CURRENT_TIMESTAMP")),
	}
}
