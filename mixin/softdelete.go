package mixin

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	entmixin "entgo.io/ent/schema/mixin"
)

// SoftDelete adds is_active, bool not null default true, indexed.
//
// Queries, traversals and eager loads hide rows with is_active = false unless
// the context comes from runledger.WithInactive. A delete through the client
// sets is_active = false instead, unless the context comes from
// runledger.WithHardDelete; a hard delete lets the database cascade to every
// child row. Soft delete never cascades: children of a soft-deleted row stay
// as they were.
type SoftDelete struct{ entmixin.Schema }

// Fields of the SoftDelete mixin.
func (SoftDelete) Fields() []ent.Field {
	return []ent.Field{
		field.Bool("is_active").Default(true),
	}
}

// Indexes of the SoftDelete mixin.
func (SoftDelete) Indexes() []ent.Index {
	return []ent.Index{index.Fields("is_active")}
}
