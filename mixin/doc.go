// Package mixin holds the reusable ent mixins of the runledger schema. A schema
// in ent/schema reads as the list of what it has:
//
//	func (Run) Mixin() []ent.Mixin {
//		return mixin.Entity(mixin.StatusTracking{})
//	}
//
// Behaviour that belongs to a mixin lives with it: Audit fills created_by and
// updated_by from runledger.WithActor, Version guards updates with the version
// that was read, SoftDelete hides and soft-deletes rows. The database enforces
// the same invariants on its own (see migrate/migrations); the mixins add typed
// errors and ergonomics on top.
package mixin

import (
	"strconv"

	"entgo.io/ent"
)

// Entity returns the mixins every versioned entity has (Errors, Timestamp,
// Audit, Version, SoftDelete) followed by extra.
func Entity(extra ...ent.Mixin) []ent.Mixin {
	return append([]ent.Mixin{Errors{}, Timestamp{}, Audit{}, Version{}, SoftDelete{}}, extra...)
}

// Varchar is the SchemaType of a PostgreSQL varchar(n) column. ent renders
// field.String as an unbounded varchar on PostgreSQL whatever its MaxLen;
// pair it with MaxLen(n) so the client checks the length before the database.
func Varchar(n int) map[string]string {
	return map[string]string{"postgres": "varchar(" + strconv.Itoa(n) + ")"}
}
