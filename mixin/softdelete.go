package mixin

import (
	"context"
	"fmt"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/dialect/sql"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	entmixin "entgo.io/ent/schema/mixin"

	"github.com/runledger/runledger"
	gen "github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/intercept"
)

// SoftDelete adds is_active, bool not null default true, indexed.
//
// Queries hide rows with is_active = false unless the context comes from
// runledger.WithInactive: listings, lookups by ID and traversals to children
// (automation -> batches, batch -> items) see only active rows. A record
// always resolves what it belongs to or what it ran, though: a traversal step
// to a parent (run -> automation, batch_execution -> batch, item_execution ->
// item, item -> batch; every many-to-one edge) and everything eager-loaded
// under a query of execution records (runs, batch executions, item
// executions, their history and orchestration links) return the row even
// when it is soft-deleted, with IsActive false, so code that walks
// item_execution -> item -> batch never meets a nil edge. A delete through the client
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

// InactivePredicate is the predicate of the is_active index, written as
// PostgreSQL prints it back so that a diff after apply plans nothing.
const InactivePredicate = "(NOT is_active)"

// Indexes of the SoftDelete mixin: is_active, partial on the inactive rows.
// Active rows are all but a few, so no plan reads them through an index on
// is_active (a scan of the table or of another index is cheaper), while every
// insert and every update that is not HOT would pay for one. The partial
// index holds only the soft-deleted rows: it finds them (purge, restore,
// "what was deleted") in time proportional to their number, tells the
// planner how few they are, and costs nothing to keep while rows stay active.
func (SoftDelete) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("is_active").Annotations(entsql.IndexWhere(InactivePredicate)),
	}
}

// executionTypes are the types of execution records: what is eager-loaded
// under a query of one of them resolves even when soft-deleted.
var executionTypes = map[string]bool{
	gen.TypeRun: true, gen.TypeBatchExecution: true, gen.TypeItemExecution: true,
	gen.TypeItemStateHistory: true, gen.TypeRunOrchestration: true, gen.TypeOrchestrationInstance: true,
	gen.TypeStatusCount: true,
}

// Interceptors of the SoftDelete mixin: hide inactive rows, except where a
// record resolves its parent (see SoftDelete).
func (SoftDelete) Interceptors() []ent.Interceptor {
	return []ent.Interceptor{
		ent.TraverseFunc(func(ctx context.Context, q ent.Query) error {
			if runledger.IncludesInactive(ctx) {
				return nil
			}
			w, err := intercept.NewQuery(q)
			if err != nil {
				return fmt.Errorf("mixin: soft delete: %w", err)
			}
			// An eager load runs inside the query that asked for it, whose
			// query context names the outermost type.
			if qc := ent.QueryFromContext(ctx); qc != nil && qc.Type != w.Type() && executionTypes[qc.Type] {
				return nil
			}
			w.WhereP(func(s *sql.Selector) {
				// A many-to-one traversal step selects the parent joined
				// with its child: the child resolves it, active or not. A
				// listing or a step to children joins nothing.
				if s.HasJoins() {
					return
				}
				s.Where(sql.EQ(s.C("is_active"), true))
			})
			return nil
		}),
	}
}

// Hooks of the SoftDelete mixin: turn deletes into is_active = false.
func (SoftDelete) Hooks() []ent.Hook {
	return []ent.Hook{softDeleteHook}
}

// softDeletable is what the SoftDelete hook needs of a generated mutation.
type softDeletable interface {
	ent.Mutation
	SetOp(ent.Op)
	Client() *gen.Client
	WhereP(...func(*sql.Selector))
}

func softDeleteHook(next ent.Mutator) ent.Mutator {
	return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
		if !m.Op().Is(ent.OpDelete|ent.OpDeleteOne) || runledger.IsHardDelete(ctx) {
			return next.Mutate(ctx, m)
		}
		mx, ok := m.(softDeletable)
		if !ok {
			return nil, fmt.Errorf("mixin: soft delete: unexpected mutation type %T", m)
		}
		// Deleting an already inactive row finds nothing, like a hard delete would.
		mx.WhereP(sql.FieldEQ("is_active", true))
		mx.SetOp(ent.OpUpdate)
		if err := mx.SetField("is_active", false); err != nil {
			return nil, fmt.Errorf("mixin: soft delete: %w", err)
		}
		return mx.Client().Mutate(ctx, mx)
	})
}
