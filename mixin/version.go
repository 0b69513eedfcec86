package mixin

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	entmixin "entgo.io/ent/schema/mixin"
)

// Version adds version, integer not null default 1, for optimistic locking.
//
// An UpdateOne through the client applies only if the row still has the
// version that was read (UPDATE ... WHERE id = $1 AND version = $2) and
// returns a *runledger.StaleError (errors.Is runledger.ErrStale) when it does
// not. Every update raises the version by one; the database's update trigger
// does the same for every writer, so a bulk update or raw SQL bumps it too.
type Version struct{ entmixin.Schema }

// Fields of the Version mixin.
func (Version) Fields() []ent.Field {
	return []ent.Field{
		field.Int32("version").Default(1),
	}
}
