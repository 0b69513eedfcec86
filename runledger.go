// Package runledger is the vocabulary of the runledger persistence layer: the
// ExecutionStatus type with its transition table, the sentinel errors every
// layer returns, and the acting-user context that the audit columns record.
//
// The generated graph client lives in package ent, the mixins in package
// mixin, the database handle in package db and the migrations in package
// migrate. This package imports none of them.
package runledger

import "context"

type actorKey struct{}

// WithActor returns a context that records name as the acting user. Writes made
// with it fill created_by and updated_by (and so item_state_history.created_by).
// An empty name leaves the actor unset.
func WithActor(ctx context.Context, name string) context.Context {
	if name == "" {
		return ctx
	}
	return context.WithValue(ctx, actorKey{}, name)
}

// ActorFrom returns the acting user recorded by WithActor, if any.
func ActorFrom(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(actorKey{}).(string)
	return name, ok && name != ""
}

type inactiveKey struct{}

// WithInactive returns a context in which queries, traversals and eager loads
// also return soft-deleted rows (is_active = false).
func WithInactive(ctx context.Context) context.Context {
	return context.WithValue(ctx, inactiveKey{}, true)
}

// IncludesInactive reports whether WithInactive is in effect.
func IncludesInactive(ctx context.Context) bool {
	v, _ := ctx.Value(inactiveKey{}).(bool)
	return v
}

type hardDeleteKey struct{}

// WithHardDelete returns a context in which deletes through the client remove
// rows instead of setting is_active = false. The database then cascades the
// delete to every child row.
func WithHardDelete(ctx context.Context) context.Context {
	return context.WithValue(ctx, hardDeleteKey{}, true)
}

// IsHardDelete reports whether WithHardDelete is in effect.
func IsHardDelete(ctx context.Context) bool {
	v, _ := ctx.Value(hardDeleteKey{}).(bool)
	return v
}

type expectVersionKey struct{}

// ExpectVersion returns a context in which updates through the client apply
// only to rows at version v: an UpdateOne or UpdateOneID updates its row only
// if its version is still v and otherwise fails with a *StaleError
// (errors.Is ErrStale); a bulk Update changes only the rows of its WHERE
// clause that are at version v (its count tells how many). Use it to update
// by ID with the version a client sent back, without reading the row first.
func ExpectVersion(ctx context.Context, v int32) context.Context {
	return context.WithValue(ctx, expectVersionKey{}, v)
}

// ExpectedVersion returns the version set by ExpectVersion, if any.
func ExpectedVersion(ctx context.Context) (int32, bool) {
	v, ok := ctx.Value(expectVersionKey{}).(int32)
	return v, ok
}
