// Package schema declares the runledger model as ent schemas: one file per
// entity, each listing its mixins, fields, edges and indexes. See DESIGN.md.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// id is the UUID primary key every entity has, defaulted by the client and,
// for raw SQL writers, by gen_random_uuid().
func id() ent.Field {
	return field.UUID("id", uuid.UUID{}).
		Default(uuid.New).
		Immutable().
		Annotations(entsql.DefaultExpr("gen_random_uuid()"))
}

// cascade makes the database delete the children of a parent edge with it.
func cascade() schema.Annotation { return entsql.OnDelete(entsql.Cascade) }

// fk declares the required, immutable foreign key field of a child edge.
func fk(name string) ent.Field {
	return field.UUID(name, uuid.UUID{}).Immutable()
}

// timeOrderedID is the UUID primary key of the hot tables (item,
// item_execution, item_state_history): a time-ordered version 7 UUID, made
// by the client with uuid.NewV7 and, for COPY, INSERT ... SELECT, raw SQL
// writers and the history trigger, by the database's runledger_uuidv7()
// (migration uuidv7). Rows made together sort together, so a claim in id
// order reads neighbouring heap and index pages instead of scattered ones.
func timeOrderedID() ent.Field {
	return field.UUID("id", uuid.UUID{}).
		Default(newV7).
		Immutable().
		Annotations(entsql.DefaultExpr("runledger_uuidv7()"))
}

// newV7 returns a version 7 UUID. uuid.NewV7 fails only when the system's
// random source does; a version 4 UUID (which panics then, like every
// uuid.New) keeps the id a valid key.
func newV7() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

func uuidType() uuid.UUID { return uuid.UUID{} }
