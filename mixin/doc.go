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
	"unicode/utf8"

	"entgo.io/ent"

	"github.com/runledger/runledger"
)

// Entity returns the mixins every versioned entity has (Errors, Timestamp,
// Audit, Version, SoftDelete) followed by extra.
func Entity(extra ...ent.Mixin) []ent.Mixin {
	return append([]ent.Mixin{Errors{}, Timestamp{}, Audit{}, Version{}, SoftDelete{}}, extra...)
}

// Varchar is the SchemaType of a PostgreSQL varchar(n) column. ent renders
// field.String as an unbounded varchar on PostgreSQL whatever its MaxLen;
// pair it with Validate(MaxChars(n)) so the client checks the length before
// the database.
func Varchar(n int) map[string]string {
	return map[string]string{"postgres": "varchar(" + strconv.Itoa(n) + ")"}
}

// MaxChars returns a validator that refuses strings of more than n
// characters, counted as PostgreSQL counts them for varchar(n) (runes, not
// bytes: ent's MaxLen counts bytes and would refuse 200 'é' that
// varchar(200) holds). The error matches runledger.ErrInvalid.
func MaxChars(n int) func(string) error {
	return func(s string) error {
		if utf8.RuneCountInString(s) > n {
			return &runledger.InvalidError{Reason: "at most " + strconv.Itoa(n) + " characters"}
		}
		return nil
	}
}
