package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
)

// check verifies, on every primary: that it holds exactly the automations
// routed to it; that every run and item execution succeeded, with the
// attempts the handler's failures imply; that each attempt of each item
// execution was handled exactly once, under its own automation, and no call
// was made for an item execution no primary holds; that every item's
// history is the sequence its attempts imply; that Progress (the
// status_count ledger) agrees with the items; and that the guards refuse a
// change of history and an illegal transition.
func (s *sim) check(ctx context.Context, res *result) error {
	seen := 0
	for i, c := range s.clusters {
		n, err := s.checkCluster(ctx, i, c, res)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		seen += n
	}
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	if len(s.calls.calls) != seen {
		return fmt.Errorf("%d distinct handler calls, but the primaries hold %d attempts", len(s.calls.calls), seen)
	}
	return nil
}

// checkCluster checks primary i and returns the attempts it holds.
func (s *sim) checkCluster(ctx context.Context, i int, c *cluster, res *result) (int, error) {
	q := c.d.SQL()
	// Isolation: the automations here are those routed here, and only they.
	rows, err := q.QueryContext(ctx, `SELECT name FROM automation`)
	if err != nil {
		return 0, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, err
		}
		if route(n, s.names) != i {
			rows.Close()
			return 0, fmt.Errorf("holds automation %s, which routes to %s", n, s.names[route(n, s.names)])
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(names) != len(c.autos) {
		return 0, fmt.Errorf("holds %d automations, %d were routed to it", len(names), len(c.autos))
	}
	var unfinished int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM run WHERE status <> 'succeeded'`).Scan(&unfinished); err != nil {
		return 0, err
	}
	if unfinished > 0 {
		return 0, fmt.Errorf("%d runs did not succeed", unfinished)
	}

	// Every item execution: succeeded, its attempts as the handler's
	// failures imply, each attempt handled exactly once under its automation.
	rows, err = q.QueryContext(ctx, `SELECT ie.id, a.name, ie.status, ie.attempt_count, i.sequence_number
		FROM item_execution ie JOIN automation a ON a.id = ie.automation_id JOIN item i ON i.id = ie.item_id`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	attempts, items, retried := 0, 0, 0
	for rows.Next() {
		var (
			id           uuid.UUID
			name, status string
			n            int32
			seq          int
		)
		if err := rows.Scan(&id, &name, &status, &n, &seq); err != nil {
			return 0, err
		}
		items++
		want := int32(1)
		if s.cfg.failEvery > 0 && seq%s.cfg.failEvery == 0 {
			want = 2
			retried++
		}
		if status != string(runledger.StatusSucceeded) || n != want {
			return 0, fmt.Errorf("item execution %s: %s after %d attempts, want succeeded after %d", id, status, n, want)
		}
		for k := int32(1); k <= n; k++ {
			if got := s.calls.calls[callKey{id, k}]; got != 1 {
				return 0, fmt.Errorf("item execution %s, attempt %d: handled %d times", id, k, got)
			}
		}
		if got := s.calls.names[id]; got != name {
			return 0, fmt.Errorf("item execution %s of %s was handled as %q", id, name, got)
		}
		attempts += int(n)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if items != c.items(s.cfg.items) {
		return 0, fmt.Errorf("%d item executions, want %d", items, c.items(s.cfg.items))
	}
	st := res.stats[i]
	if st.Succeeded != int64(items) || st.Retried != int64(retried) || st.Claimed != int64(attempts) {
		return 0, fmt.Errorf("runner stats %+v, want %d claimed, %d succeeded, %d retried", st, attempts, items, retried)
	}

	// History: the sequence each item's attempts imply, in order.
	var badHistory int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM item_execution ie
		CROSS JOIN LATERAL (SELECT string_agg(coalesce(h.previous_status, '-') || '>' || h.new_status, ',' ORDER BY h.changed_at, h.id) AS seq
			FROM item_state_history h WHERE h.item_execution_id = ie.id) h
		WHERE h.seq IS DISTINCT FROM CASE ie.attempt_count
			WHEN 1 THEN '->queued,queued>running,running>succeeded'
			WHEN 2 THEN '->queued,queued>running,running>retrying,retrying>running,running>succeeded' END`).Scan(&badHistory); err != nil {
		return 0, err
	}
	if badHistory > 0 {
		return 0, fmt.Errorf("%d item executions have a history other than their attempts imply", badHistory)
	}

	// Counts: Progress (the status_count ledger) agrees with the items.
	for name, run := range c.runs {
		p, err := c.x.Progress(ctx, run)
		if err != nil {
			return 0, err
		}
		if p.Counts[runledger.StatusSucceeded] != int64(s.cfg.items) || p.Counts.Total() != int64(s.cfg.items) || p.Status != runledger.StatusSucceeded {
			return 0, fmt.Errorf("Progress of %s's run: %s %v, want succeeded, %d succeeded", name, p.Status, p.Counts, s.cfg.items)
		}
	}

	// Guards: history is immutable, a finished item cannot go back.
	for _, g := range []struct{ stmt, want string }{
		{`UPDATE item_state_history SET created_by = 'shards' WHERE id = (SELECT id FROM item_state_history LIMIT 1)`, "immutable"},
		{`UPDATE item_execution SET status = 'queued' WHERE id = (SELECT id FROM item_execution LIMIT 1)`, "illegal status transition"},
	} {
		if err := refused(ctx, q, g.stmt, g.want); err != nil {
			return 0, err
		}
	}
	return attempts, nil
}

// refused runs stmt in a transaction it rolls back and requires that the
// database refused it with an error containing want.
func refused(ctx context.Context, q *sql.DB, stmt, want string) error {
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, stmt)
	if err == nil {
		return fmt.Errorf("guard did not refuse %q", stmt)
	}
	if !strings.Contains(err.Error(), want) {
		return fmt.Errorf("%q: %w, want an error containing %q", stmt, err, want)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
