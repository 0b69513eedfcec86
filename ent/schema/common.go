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

func uuidType() uuid.UUID { return uuid.UUID{} }
