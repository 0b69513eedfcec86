package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/automation"
	"github.com/runledger/runledger/ent/item"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/itemstatehistory"
	entrun "github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/execution"
)

// graphRuns is the number of runs of the graph query's automation; the query
// reads the latest.
const graphRuns = 3

// graphFailEvery: one item in graphFailEvery fails twice (queued, running,
// retrying, running, failed: five history rows); the others succeed.
const graphFailEvery = 100

// graph: "the failed item executions of an automation's latest run, with
// their item payloads and history" through the ent client (one traversal,
// eager-loading items and history) against one hand-written JOIN.
func (b *bench) graph(ctx context.Context) error {
	d, _, err := b.scratch.runledger(ctx, "graph", 4)
	if err != nil {
		return err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	auto, batches, err := newAutomation(ctx, d, "graph", b.cfg.schema, 1)
	if err != nil {
		return err
	}
	if err := fill(ctx, x, batches, b.cfg.graphN); err != nil {
		return err
	}
	b.log.Printf("   setting up %d runs of %s items, 1 in %d failing", graphRuns, count(b.cfg.graphN), graphFailEvery)
	for range graphRuns {
		if err := burnWithFailures(ctx, x, auto); err != nil {
			return err
		}
	}
	if err := analyze(ctx, d.SQL()); err != nil {
		return err
	}
	want := b.cfg.graphN / graphFailEvery
	if b.cfg.graphN%graphFailEvery > 7 {
		want++
	}
	check := func(execs, history int) error {
		if execs != want || history != 5*want {
			return fmt.Errorf("read %d failed executions and %d history rows, want %d and %d", execs, history, want, 5*want)
		}
		return nil
	}
	figs, err := b.compare(ctx, "ms",
		variant{"graph: ent client", func(ctx context.Context) (float64, error) {
			return medianOf(ctx, b.cfg.latencyCalls, func(ctx context.Context) error {
				execs, err := failedByClient(ctx, d, auto)
				if err != nil {
					return err
				}
				history := 0
				for _, e := range execs {
					history += len(e.Edges.History)
					if e.Edges.Item == nil {
						return fmt.Errorf("execution %s: item not loaded", e.ID)
					}
				}
				return check(len(execs), history)
			})
		}},
		variant{"graph: hand-written SQL", func(ctx context.Context) (float64, error) {
			return medianOf(ctx, b.cfg.latencyCalls, func(ctx context.Context) error {
				execs, err := failedBySQL(ctx, d.SQL(), auto)
				if err != nil {
					return err
				}
				history := 0
				for _, e := range execs {
					history += len(e.History)
				}
				return check(len(execs), history)
			})
		}},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{workload: fmt.Sprintf("graph query (%d failed of %s in latest run): client vs SQL", want, count(b.cfg.graphN)), ours: figs[0], base: figs[1], unit: "ms", target: target{ratioAtMost, 1.2}})
	return nil
}

// burnWithFailures starts a run of the automation with two attempts per
// item and works it to the end: one item in graphFailEvery fails each
// attempt, the others succeed.
func burnWithFailures(ctx context.Context, x *execution.Client, auto uuid.UUID) error {
	r, err := x.StartRun(ctx, auto, execution.StartOptions{MaxAttempts: 2})
	if err != nil {
		return err
	}
	for {
		claimed, err := x.Claim(ctx, "graph-worker", 500, time.Minute)
		if err != nil {
			return err
		}
		if len(claimed) == 0 {
			p, err := x.Progress(ctx, r.ID)
			if err != nil {
				return err
			}
			if p.Status.Terminal() {
				return nil
			}
			time.Sleep(5 * time.Millisecond) // retrying items come back after 1 ms
			continue
		}
		var (
			results  []execution.Result
			failures []execution.Failure
		)
		for _, c := range claimed {
			if c.SequenceNumber%graphFailEvery == 7 {
				failures = append(failures, execution.Failure{ID: c.ID, Error: fmt.Sprintf("bench: attempt %d failed", c.Attempt)})
			} else {
				results = append(results, execution.Result{ID: c.ID, Payload: json.RawMessage(`{"ok":true}`)})
			}
		}
		if _, err := x.Complete(ctx, "graph-worker", results); err != nil {
			return err
		}
		if _, err := x.Fail(ctx, "graph-worker", failures); err != nil {
			return err
		}
	}
}

// failedByClient is the graph query through the generated client.
func failedByClient(ctx context.Context, d *db.DB, auto uuid.UUID) ([]*ent.ItemExecution, error) {
	return d.Automation.Query().
		Where(automation.ID(auto)).
		QueryRuns().
		Order(entrun.ByCreatedAt(entsql.OrderDesc())).
		Limit(1).
		QueryItemExecutions().
		Where(itemexecution.StatusEQ(runledger.StatusFailed)).
		// The columns the hand-written query reads, no more: what a client
		// that cares about this query selects.
		Select(itemexecution.FieldAttemptCount, itemexecution.FieldErrorMessage,
			itemexecution.FieldStartedAt, itemexecution.FieldFinishedAt, itemexecution.FieldItemID).
		WithItem(func(q *ent.ItemQuery) {
			q.Select(item.FieldSequenceNumber, item.FieldPayload)
		}).
		WithHistory(func(q *ent.ItemStateHistoryQuery) {
			q.Select(itemstatehistory.FieldItemExecutionID, itemstatehistory.FieldPreviousStatus,
				itemstatehistory.FieldNewStatus, itemstatehistory.FieldChangedAt, itemstatehistory.FieldCreatedBy).
				Order(itemstatehistory.ByChangedAt())
		}).
		Order(itemexecution.ByID()).
		All(ctx)
}

// failedExecution is what failedBySQL returns per item execution.
type failedExecution struct {
	ID         uuid.UUID
	Attempts   int32
	Error      sql.NullString
	StartedAt  sql.NullTime
	FinishedAt sql.NullTime
	ItemID     uuid.UUID
	Sequence   int32
	Payload    json.RawMessage
	History    []historyRow
}

type historyRow struct {
	ID        uuid.UUID
	From      sql.NullString
	To        string
	ChangedAt time.Time
	By        sql.NullString
}

// failedSQL is the same query by hand, with the client's soft-delete filters.
const failedSQL = `
SELECT ie.id, ie.attempt_count, ie.error_message, ie.started_at, ie.finished_at,
	i.id, i.sequence_number, i.payload,
	h.id, h.previous_status, h.new_status, h.changed_at, h.created_by
FROM (
	SELECT r.id FROM run r JOIN automation a ON a.id = r.automation_id
	WHERE a.id = $1 AND a.is_active AND r.is_active
	ORDER BY r.created_at DESC LIMIT 1
) latest
JOIN item_execution ie ON ie.run_id = latest.id AND ie.status = 'failed' AND ie.is_active
JOIN item i ON i.id = ie.item_id AND i.is_active
LEFT JOIN item_state_history h ON h.item_execution_id = ie.id
ORDER BY ie.id, h.changed_at`

// failedBySQL runs failedSQL and groups the history under its execution.
func failedBySQL(ctx context.Context, d *sql.DB, auto uuid.UUID) ([]*failedExecution, error) {
	rows, err := d.QueryContext(ctx, failedSQL, auto)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*failedExecution
	for rows.Next() {
		var (
			e      failedExecution
			h      historyRow
			hID    uuid.NullUUID
			hTo    sql.NullString
			hAt    sql.NullTime
			itemID uuid.UUID
			pl     []byte
		)
		if err := rows.Scan(&e.ID, &e.Attempts, &e.Error, &e.StartedAt, &e.FinishedAt,
			&itemID, &e.Sequence, &pl,
			&hID, &h.From, &hTo, &hAt, &h.By); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != e.ID {
			e.ItemID, e.Payload = itemID, pl
			out = append(out, &e)
		}
		if hID.Valid {
			h.ID, h.To, h.ChangedAt = hID.UUID, hTo.String, hAt.Time
			last := out[len(out)-1]
			last.History = append(last.History, h)
		}
	}
	return out, rows.Err()
}
