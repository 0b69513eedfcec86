package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/runledger/runledger/mixin"
)

// Index predicates, written exactly as PostgreSQL prints them back so that a
// diff after apply plans nothing (Atlas compares predicates as text).
const (
	// ClaimablePredicate: the statuses a worker may claim (when not_before has passed).
	ClaimablePredicate = "(status)::text = ANY ('{queued,retrying,scheduled}'::text[])"
	// StatusIndexPredicate: the statuses the status index holds, those
	// that no other index of item_execution does, but succeeded. Queued,
	// retrying and scheduled rows are in ix_item_execution_claim (and
	// _claim_automation), running ones in ix_item_execution_lease; succeeded
	// is what nearly every row of a finished run is, which no plan reads
	// through an index. So each claim and each completion, the two updates
	// every item goes through, skips one index insert (README "Keys and
	// indexes").
	StatusIndexPredicate = "((status)::text = ANY ('{pending,failed,cancelled,timed_out,skipped}'::text[]))"
)

// ItemExecution is the execution of one item within a run, with retries.
type ItemExecution struct{ ent.Schema }

// Mixin of the ItemExecution.
func (ItemExecution) Mixin() []ent.Mixin {
	return mixin.Entity(mixin.StatusTracking{IndexWhere: StatusIndexPredicate}, mixin.Retryable{})
}

// Fields of the ItemExecution.
func (ItemExecution) Fields() []ent.Field {
	return []ent.Field{
		timeOrderedID(),
		fk("run_id"),
		fk("batch_execution_id"),
		fk("item_id"),
		// A documented denormalisation: the automation of the item's run
		// (run.automation_id), so that a worker can claim the items of its
		// automations through ix_item_execution_claim_automation at a cost
		// that does not grow with other automations' backlogs. No foreign
		// key of its own: run_id already ties the row to the run (and
		// cascades). The database fills it when a writer leaves it out and
		// refuses a value that is not the run's automation.
		field.UUID("automation_id", uuid.UUID{}).Immutable().
			Comment("the automation of the item's run (run.automation_id), kept by the database; scopes claims"),
		field.JSON("result_payload", map[string]any{}).Optional(),
		field.Text("error_message").Optional().Nillable(),
		field.Bool("retryable").Default(true),
		// Claiming: lower priority first, then not_before, then id.
		field.Int32("priority").Default(0),
		field.Time("not_before").Default(time.Now).
			Annotations(entsql.Default("CURRENT_TIMESTAMP")).
			Comment("when the item may be claimed: now for queued items, the backoff for retrying ones"),
		field.Time("lease_expires_at").Optional().Nillable().
			Comment("while running: when the worker's lease ends and Rescue may take the item back"),
		field.String("claimed_by").Validate(mixin.MaxChars(100)).SchemaType(mixin.Varchar(100)).Optional().Nillable().
			Comment("the worker that holds (or last held) the item"),
		field.Bool("cancel_requested").Default(false).
			Comment("set by CancelRun on running items: the worker's next report cancels them"),
	}
}

// Edges of the ItemExecution.
func (ItemExecution) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", Run.Type).Ref("item_executions").
			Field("run_id").Unique().Required().Immutable(),
		edge.From("batch_execution", BatchExecution.Type).Ref("item_executions").
			Field("batch_execution_id").Unique().Required().Immutable(),
		edge.From("item", Item.Type).Ref("executions").
			Field("item_id").Unique().Required().Immutable(),
		edge.To("history", ItemStateHistory.Type).Annotations(cascade()),
	}
}

// Indexes of the ItemExecution.
func (ItemExecution) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id", "item_id").Unique(),
		index.Fields("batch_execution_id"),
		index.Fields("item_id"),
		// The claim path: exactly its ORDER BY, restricted to claimable rows.
		index.Fields("priority", "not_before", "id").
			StorageKey("ix_item_execution_claim").
			Annotations(entsql.IndexWhere(ClaimablePredicate)),
		// The scoped claim path (ClaimFor): one automation's claimable rows in
		// claim order.
		index.Fields("automation_id", "priority", "not_before", "id").
			StorageKey("ix_item_execution_claim_automation").
			Annotations(entsql.IndexWhere(ClaimablePredicate)),
		// Rescue: expired leases of running items.
		index.Fields("lease_expires_at").
			StorageKey("ix_item_execution_lease").
			Annotations(entsql.IndexWhere("(status)::text = 'running'::text")),
	}
}

// Annotations of the ItemExecution: its table name.
func (ItemExecution) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("item_execution")}
}
