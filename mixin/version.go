package mixin

import (
	"context"
	"errors"
	"fmt"

	"entgo.io/ent"
	"entgo.io/ent/dialect/sql"
	"entgo.io/ent/schema/field"
	entmixin "entgo.io/ent/schema/mixin"
	"github.com/google/uuid"

	"github.com/runledger/runledger"
	gen "github.com/runledger/runledger/ent"
)

// Version adds version, integer not null default 1, for optimistic locking.
//
// UpdateOne(entity) through the client applies only if the row still has the
// version the entity was read at (UPDATE ... WHERE id = $1 AND version = $2)
// and returns a *runledger.StaleError (errors.Is runledger.ErrStale) when it
// does not. UpdateOneID has no version of the caller's: it reads the row's
// current version just before updating, which guards only against a change
// in between, not against one since the caller last looked; bulk Update
// checks no version. With a context from runledger.ExpectVersion(ctx, v),
// UpdateOne and UpdateOneID apply only at version v (StaleError otherwise,
// and no read first) and bulk Update changes only rows at version v. Every
// update raises the version by one; the database's update trigger does the
// same for every writer, so a bulk update or raw SQL bumps it too.
type Version struct{ entmixin.Schema }

// Fields of the Version mixin.
func (Version) Fields() []ent.Field {
	return []ent.Field{
		field.Int32("version").Default(1),
	}
}

// Hooks of the Version mixin.
func (Version) Hooks() []ent.Hook {
	return []ent.Hook{versionHook}
}

// versioned is what the Version hook needs of a generated mutation.
type versioned interface {
	ent.Mutation
	WhereP(...func(*sql.Selector))
}

// versionHook guards UpdateOne with the version that was read. Bulk updates
// have nothing read to compare with; the database's update trigger bumps
// their version like every other writer's.
func versionHook(next ent.Mutator) ent.Mutator {
	return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
		switch {
		case m.Op().Is(ent.OpUpdateOne):
			return guardedUpdateOne(ctx, next, m)
		case m.Op().Is(ent.OpUpdate):
			if v, ok := runledger.ExpectedVersion(ctx); ok {
				mx, ok := m.(versioned)
				if !ok {
					return nil, fmt.Errorf("mixin: version: unexpected mutation type %T", m)
				}
				mx.WhereP(sql.FieldEQ("version", v))
			}
		}
		return next.Mutate(ctx, m)
	})
}

// guardedUpdateOne adds WHERE version = <read> and SET version = <read> + 1.
// The version is the one of runledger.ExpectVersion, else the one
// UpdateOne(entity) carries; UpdateOneID reads it.
func guardedUpdateOne(ctx context.Context, next ent.Mutator, m ent.Mutation) (ent.Value, error) {
	mx, ok := m.(versioned)
	if !ok {
		return nil, fmt.Errorf("mixin: version: unexpected mutation type %T", m)
	}
	read, expected := runledger.ExpectedVersion(ctx)
	if !expected {
		old, err := m.OldField(ctx, "version")
		if err != nil {
			return nil, err
		}
		if read, ok = old.(int32); !ok {
			return nil, fmt.Errorf("mixin: version: unexpected version type %T", old)
		}
	}
	if err := m.SetField("version", read+1); err != nil {
		return nil, fmt.Errorf("mixin: version: %w", err)
	}
	mx.WhereP(sql.FieldEQ("version", read))
	v, err := next.Mutate(ctx, m)
	var nf *gen.NotFoundError
	if errors.As(err, &nf) {
		id := ""
		if ider, ok := m.(interface{ ID() (uuid.UUID, bool) }); ok {
			if u, ok := ider.ID(); ok {
				id = u.String()
			}
		}
		return nil, &runledger.StaleError{Table: m.Type(), ID: id, Version: read}
	}
	return v, err
}
