package mixin

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	entmixin "entgo.io/ent/schema/mixin"
)

// Retryable adds attempt_count (integer not null default 0) and max_attempts
// (integer null), with named CHECK constraints attempt_count >= 0 and
// max_attempts >= 1 when set.
type Retryable struct{ entmixin.Schema }

// Fields of the Retryable mixin.
func (Retryable) Fields() []ent.Field {
	return []ent.Field{
		field.Int32("attempt_count").Default(0).NonNegative(),
		field.Int32("max_attempts").Optional().Nillable().Min(1),
	}
}

// Annotations of the Retryable mixin: its CHECK constraints.
func (Retryable) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Checks(map[string]string{
			"ck_attempt_count_nonnegative": "attempt_count >= 0",
			"ck_max_attempts_positive":     "max_attempts IS NULL OR max_attempts >= 1",
		}),
	}
}
