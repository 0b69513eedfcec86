package mixin

import (
	"context"

	"entgo.io/ent"
	entmixin "entgo.io/ent/schema/mixin"

	"github.com/runledger/runledger/internal/dberr"
)

// Errors translates the database errors of every mutation and query of the
// entity into runledger's vocabulary (see internal/dberr): a unique violation
// becomes a *runledger.ConflictError, a refused transition a
// *runledger.TransitionError, and so on. It comes first in a schema's mixins
// so that it wraps every other hook.
type Errors struct{ entmixin.Schema }

// Hooks of the Errors mixin.
func (Errors) Hooks() []ent.Hook {
	return []ent.Hook{func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			v, err := next.Mutate(ctx, m)
			return v, dberr.Translate(ctx, err)
		})
	}}
}

// Interceptors of the Errors mixin.
func (Errors) Interceptors() []ent.Interceptor {
	return []ent.Interceptor{ent.InterceptFunc(func(next ent.Querier) ent.Querier {
		return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
			v, err := next.Query(ctx, q)
			return v, dberr.Translate(ctx, err)
		})
	})}
}
