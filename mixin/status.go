package mixin

import (
	"strings"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	entmixin "entgo.io/ent/schema/mixin"

	"github.com/runledger/runledger"
)

// StatusTracking adds status (runledger.ExecutionStatus, not null, default
// pending, indexed), started_at and finished_at (timestamptz null). The
// database refuses a status outside ExecutionStatus and a finished_at before
// started_at (named CHECK constraints). The generated Duration() method of
// every entity with this mixin comes from ent/template/duration.tmpl.
type StatusTracking struct {
	entmixin.Schema
	// IndexWhere, when set, makes the status index partial: the predicate
	// (as PostgreSQL prints it back, so that migrate diff --check agrees)
	// names the statuses it holds. For a table whose other indexes already
	// hold the remaining statuses (see ItemExecution).
	IndexWhere string
}

// Fields of the StatusTracking mixin.
func (StatusTracking) Fields() []ent.Field {
	return []ent.Field{
		field.Enum("status").
			GoType(runledger.ExecutionStatus("")).
			Default(string(runledger.StatusPending)),
		field.Time("started_at").Optional().Nillable(),
		field.Time("finished_at").Optional().Nillable(),
	}
}

// Indexes of the StatusTracking mixin.
func (m StatusTracking) Indexes() []ent.Index {
	if m.IndexWhere != "" {
		return []ent.Index{index.Fields("status").Annotations(entsql.IndexWhere(m.IndexWhere))}
	}
	return []ent.Index{index.Fields("status")}
}

// Annotations of the StatusTracking mixin: its CHECK constraints.
func (StatusTracking) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Checks(map[string]string{
			"ck_status_valid":           StatusCheck("status"),
			"ck_finished_after_started": "finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at",
		}),
	}
}

// StatusCheck returns the CHECK expression that limits column to the values
// of runledger.ExecutionStatus (NULL passes, as in any CHECK).
func StatusCheck(column string) string {
	vals := make([]string, len(runledger.AllStatuses))
	for i, s := range runledger.AllStatuses {
		vals[i] = "'" + string(s) + "'"
	}
	return column + " IN (" + strings.Join(vals, ", ") + ")"
}
