package execution

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
)

// The read views below are what a dashboard or a report shows: lists with
// keyset pagination, a run with its counts, failed items with their history,
// one item execution, and a run's charts. They only read (no compaction, no
// roll-up), so a Client over a read replica serves them. Counts come from
// the status_count ledger, never from counting items.

// Limits of the views.
const (
	// DefaultPageSize is the page size when a filter gives none.
	DefaultPageSize = 50
	// MaxPageSize is the largest page a view returns.
	MaxPageSize = 500
	// DefaultMaxPayload is the most bytes of a payload ItemExecution returns
	// when given no limit; a larger one comes as a truncated preview.
	DefaultMaxPayload = 64 << 10
)

// The JSON field names of the views are those of the CLI's `-o json`
// shapes (internal/report) where the two overlap.

// Ref names a definition row: an automation or a batch.
type Ref struct {
	ID     uuid.UUID `json:"id"`
	Name   string    `json:"name"`
	Active bool      `json:"active"`
}

// RunSummary is a run as lists show it: its status, times and item counts.
type RunSummary struct {
	ID                 uuid.UUID                 `json:"id"`
	Status             runledger.ExecutionStatus `json:"status"`
	Automation         Ref                       `json:"automation"`
	CorrelationID      string                    `json:"correlation_id,omitempty"`
	CreatedAt          time.Time                 `json:"created_at"`
	StartedAt          *time.Time                `json:"started_at,omitempty"`
	FinishedAt         *time.Time                `json:"finished_at,omitempty"`
	DurationMS         *int64                    `json:"duration_ms,omitempty"` // finished - started
	CancellationReason string                    `json:"cancellation_reason,omitempty"`
	ErrorSummary       string                    `json:"error_summary,omitempty"`
	Total              int64                     `json:"total"`
	Counts             Counts                    `json:"counts"`
}

// Duration is finished_at - started_at (until now while the run is
// unfinished), and false before the run started.
func (r RunSummary) Duration() (time.Duration, bool) { return span(r.StartedAt, r.FinishedAt) }

// millis is the JSON form of a finished span: milliseconds, nil while
// unfinished or unstarted.
func millis(start, end *time.Time) *int64 {
	if start == nil || end == nil {
		return nil
	}
	ms := end.Sub(*start).Milliseconds()
	return &ms
}

func span(start, end *time.Time) (time.Duration, bool) {
	if start == nil {
		return 0, false
	}
	if end == nil {
		return time.Since(*start), true
	}
	return end.Sub(*start), true
}

// RunFilter selects runs for ListRuns. Zero values select everything.
type RunFilter struct {
	// Statuses keeps runs in any of these statuses.
	Statuses []runledger.ExecutionStatus
	// Automation keeps runs of the automation with this id or name.
	Automation string
	// CorrelationID keeps runs with exactly this correlation id.
	CorrelationID string
	// After is the Next cursor of the previous page.
	After string
	// Limit is the page size (default DefaultPageSize, at most MaxPageSize).
	Limit int
}

// RunPage is a page of runs, newest first.
type RunPage struct {
	Runs []RunSummary `json:"runs"`
	// Next is the cursor of the following page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// cursor is a keyset position in a list by (created_at, id).
type cursor struct {
	at time.Time
	id uuid.UUID
}

func (c cursor) timeString() string {
	return strconv.FormatInt(c.at.UnixMicro(), 10) + "_" + c.id.String()
}

func parseTimeCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	at, id, ok := strings.Cut(s, "_")
	us, err := strconv.ParseInt(at, 10, 64)
	u, uerr := uuid.Parse(id)
	if !ok || err != nil || uerr != nil {
		return nil, &runledger.InvalidError{Field: "after", Reason: "not a cursor this list returned"}
	}
	return &cursor{at: time.UnixMicro(us), id: u}, nil
}

func pageSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, &runledger.InvalidError{Field: "limit", Reason: fmt.Sprintf("between 1 and %d", MaxPageSize)}
	}
	return n, nil
}

func statusNames(statuses []runledger.ExecutionStatus) (any, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	out := make([]string, len(statuses))
	for i, s := range statuses {
		if !s.Valid() {
			return nil, &runledger.InvalidError{Field: "status", Reason: fmt.Sprintf("unknown status %q", s)}
		}
		out[i] = string(s)
	}
	return pq.Array(out), nil
}

// runColumns are the columns scanRun reads, from run r joined to automation a.
const runColumns = `r.id, r.automation_id, a.name, a.is_active, r.status, coalesce(r.correlation_id, ''), r.created_at,
	r.started_at, r.finished_at, coalesce(r.cancellation_reason, ''), coalesce(r.error_summary, '')`

func scanRun(rows interface{ Scan(...any) error }) (RunSummary, error) {
	var (
		r        RunSummary
		status   string
		from, to sql.NullTime
	)
	err := rows.Scan(&r.ID, &r.Automation.ID, &r.Automation.Name, &r.Automation.Active, &status, &r.CorrelationID, &r.CreatedAt,
		&from, &to, &r.CancellationReason, &r.ErrorSummary)
	r.Status = runledger.ExecutionStatus(status)
	r.StartedAt, r.FinishedAt = timePtr(from), timePtr(to)
	r.DurationMS = millis(r.StartedAt, r.FinishedAt)
	r.Counts = Counts{}
	return r, err
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

// ListRuns returns a page of runs, newest first (created_at, id), filtered by
// status, automation and correlation id, with their item counts. Pages are
// keyset-paginated: the cost of a page does not grow with its depth.
func (c *Client) ListRuns(ctx context.Context, f RunFilter) (*RunPage, error) {
	limit, err := pageSize(f.Limit)
	if err != nil {
		return nil, err
	}
	after, err := parseTimeCursor(f.After)
	if err != nil {
		return nil, err
	}
	statuses, err := statusNames(f.Statuses)
	if err != nil {
		return nil, err
	}
	var autoID, autoName any
	if f.Automation != "" {
		if id, err := uuid.Parse(f.Automation); err == nil {
			autoID = id
		} else {
			autoName = f.Automation
		}
	}
	var afterAt, afterID any
	if after != nil {
		afterAt, afterID = after.at, after.id
	}
	rows, err := c.read.SQL().QueryContext(ctx, `
		SELECT `+runColumns+`
		FROM run r JOIN automation a ON a.id = r.automation_id
		WHERE r.is_active
			AND ($1::text[] IS NULL OR (r.status)::text = ANY ($1::text[]))
			AND ($2::uuid IS NULL OR r.automation_id = $2::uuid)
			AND ($3::text IS NULL OR a.name = $3::text)
			AND ($4::text IS NULL OR r.correlation_id = $4::text)
			AND ($5::timestamptz IS NULL OR (r.created_at, r.id) < ($5::timestamptz, $6::uuid))
		ORDER BY r.created_at DESC, r.id DESC
		LIMIT $7`, statuses, autoID, autoName, nullString(f.CorrelationID), afterAt, afterID, limit+1)
	page := &RunPage{Runs: []RunSummary{}}
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		r, err := scanRun(rows)
		page.Runs = append(page.Runs, r)
		return err
	}); err != nil {
		return nil, err
	}
	if len(page.Runs) > limit {
		page.Runs = page.Runs[:limit]
		last := page.Runs[limit-1]
		page.Next = cursor{at: last.CreatedAt, id: last.ID}.timeString()
	}
	return page, c.fillCounts(ctx, page.Runs)
}

// fillCounts sets the counts of runs from the status_count ledger, in one
// statement.
func (c *Client) fillCounts(ctx context.Context, runs []RunSummary) error {
	if len(runs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(runs))
	at := make(map[uuid.UUID]int, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
		at[r.ID] = i
	}
	rows, err := c.read.SQL().QueryContext(ctx, `SELECT run_id, status, sum(delta) FROM status_count
		WHERE run_id = ANY ($1::uuid[]) GROUP BY run_id, status HAVING sum(delta) <> 0`, uuidArray(ids))
	return each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			id     uuid.UUID
			status string
			n      int64
		)
		if err := rows.Scan(&id, &status, &n); err != nil {
			return err
		}
		runs[at[id]].Counts[runledger.ExecutionStatus(status)] = n
		runs[at[id]].Total += n
		return nil
	})
}

// AutomationSummary is an automation with its latest runs.
type AutomationSummary struct {
	ID          uuid.UUID    `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Active      bool         `json:"active"`
	LatestRuns  []RunSummary `json:"latest_runs"`
}

// AutomationFilter selects automations for ListAutomations.
type AutomationFilter struct {
	// Inactive includes soft-deleted automations (is_active = false).
	Inactive bool
	// LatestRuns is how many of each automation's latest runs to include
	// (default 3, at most 20).
	LatestRuns int
	// After is the Next cursor of the previous page.
	After string
	// Limit is the page size (default DefaultPageSize, at most MaxPageSize).
	Limit int
}

// AutomationPage is a page of automations by name.
type AutomationPage struct {
	Automations []AutomationSummary `json:"automations"`
	Next        string              `json:"next,omitempty"`
}

// ListAutomations returns a page of automations in name order (active ones
// only unless f.Inactive), each with its latest runs and their counts.
func (c *Client) ListAutomations(ctx context.Context, f AutomationFilter) (*AutomationPage, error) {
	limit, err := pageSize(f.Limit)
	if err != nil {
		return nil, err
	}
	latest := f.LatestRuns
	switch {
	case latest == 0:
		latest = 3
	case latest < 0 || latest > 20:
		return nil, &runledger.InvalidError{Field: "latest_runs", Reason: "between 1 and 20"}
	}
	var afterName, afterID any
	if f.After != "" {
		name, id, ok := strings.Cut(f.After, "\x00")
		u, err := uuid.Parse(id)
		if !ok || err != nil {
			return nil, &runledger.InvalidError{Field: "after", Reason: "not a cursor this list returned"}
		}
		afterName, afterID = name, u
	}
	page := &AutomationPage{Automations: []AutomationSummary{}}
	rows, err := c.read.SQL().QueryContext(ctx, `
		SELECT id, name, coalesce(description, ''), is_active FROM automation
		WHERE ($1 OR is_active)
			AND ($2::text IS NULL OR (name, id) > ($2::text, $3::uuid))
		ORDER BY name, id
		LIMIT $4`, f.Inactive, afterName, afterID, limit+1)
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		var a AutomationSummary
		a.LatestRuns = []RunSummary{}
		page.Automations = append(page.Automations, a)
		p := &page.Automations[len(page.Automations)-1]
		return rows.Scan(&p.ID, &p.Name, &p.Description, &p.Active)
	}); err != nil {
		return nil, err
	}
	if len(page.Automations) > limit {
		page.Automations = page.Automations[:limit]
		last := page.Automations[limit-1]
		page.Next = last.Name + "\x00" + last.ID.String()
	}
	if len(page.Automations) == 0 {
		return page, nil
	}
	ids := make([]uuid.UUID, len(page.Automations))
	at := make(map[uuid.UUID]int, len(ids))
	for i, a := range page.Automations {
		ids[i] = a.ID
		at[a.ID] = i
	}
	var runs []RunSummary
	rows, err = c.read.SQL().QueryContext(ctx, `
		SELECT `+runColumns+`
		FROM automation a
		CROSS JOIN LATERAL (
			SELECT * FROM run r WHERE r.automation_id = a.id AND r.is_active
			ORDER BY r.created_at DESC, r.id DESC LIMIT $2) r
		WHERE a.id = ANY ($1::uuid[])
		ORDER BY a.id, r.created_at DESC, r.id DESC`, uuidArray(ids), latest)
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		r, err := scanRun(rows)
		runs = append(runs, r)
		return err
	}); err != nil {
		return nil, err
	}
	if err := c.fillCounts(ctx, runs); err != nil {
		return nil, err
	}
	for _, r := range runs {
		a := &page.Automations[at[r.Automation.ID]]
		a.LatestRuns = append(a.LatestRuns, r)
	}
	return page, nil
}

// BatchSummary is a batch execution with its item counts.
type BatchSummary struct {
	ID         uuid.UUID                 `json:"id"` // the batch execution
	Batch      Ref                       `json:"batch"`
	Status     runledger.ExecutionStatus `json:"status"`
	StartedAt  *time.Time                `json:"started_at,omitempty"`
	FinishedAt *time.Time                `json:"finished_at,omitempty"`
	DurationMS *int64                    `json:"duration_ms,omitempty"`
	Total      int64                     `json:"total"`
	Counts     Counts                    `json:"counts"`
}

// Duration is finished_at - started_at (until now while unfinished), and
// false before the batch execution started.
func (b BatchSummary) Duration() (time.Duration, bool) { return span(b.StartedAt, b.FinishedAt) }

// OrchestrationSummary is an external engine's instance linked to a run.
type OrchestrationSummary struct {
	ID              uuid.UUID                 `json:"id"`
	Engine          string                    `json:"engine"`
	EngineType      string                    `json:"engine_type"`
	ExternalID      string                    `json:"external_id"`
	Status          runledger.ExecutionStatus `json:"status"`
	State           string                    `json:"state,omitempty"` // the engine's own word
	DurationSeconds *int32                    `json:"duration_seconds,omitempty"`
	StartedAt       *time.Time                `json:"started_at,omitempty"`
	FinishedAt      *time.Time                `json:"finished_at,omitempty"`
	AttachedAt      time.Time                 `json:"attached_at"`
}

// RunDetail is a run as a tree: its counts, batch executions with theirs,
// and orchestration instances with their engine state.
type RunDetail struct {
	RunSummary
	Batches        []BatchSummary         `json:"batches"`
	Orchestrations []OrchestrationSummary `json:"orchestrations"`
}

// RunDetail returns the run with its batch executions (by name) and their
// counts, and its orchestration instances: a handful of statements whatever
// the number of items.
func (c *Client) RunDetail(ctx context.Context, runID uuid.UUID) (*RunDetail, error) {
	r, err := scanRun(c.read.SQL().QueryRowContext(ctx, `SELECT `+runColumns+`
		FROM run r JOIN automation a ON a.id = r.automation_id WHERE r.id = $1`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	d := &RunDetail{RunSummary: r, Orchestrations: []OrchestrationSummary{}}
	batches, err := batchCounts(ctx, c.read.SQL(), runID, d.Counts)
	if err != nil {
		return nil, err
	}
	d.Batches, d.Total = batches, d.Counts.Total()
	rows, err := c.read.SQL().QueryContext(ctx, `
		SELECT oi.id, e.name, e.type, oi.external_id, oi.status, coalesce(oi.instance_metadata ->> $2, ''),
			oi.duration_seconds, oi.started_at, oi.finished_at, ro.attached_at
		FROM run_orchestration ro
		JOIN orchestration_instance oi ON oi.id = ro.orchestration_instance_id
		JOIN engine e ON e.id = oi.engine_id
		WHERE ro.run_id = $1 AND ro.is_active
		ORDER BY ro.attached_at, oi.id`, runID, MetadataState)
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			o        OrchestrationSummary
			status   string
			secs     sql.NullInt32
			from, to sql.NullTime
		)
		if err := rows.Scan(&o.ID, &o.Engine, &o.EngineType, &o.ExternalID, &status, &o.State, &secs, &from, &to, &o.AttachedAt); err != nil {
			return err
		}
		o.Status, o.StartedAt, o.FinishedAt = runledger.ExecutionStatus(status), timePtr(from), timePtr(to)
		if secs.Valid {
			o.DurationSeconds = &secs.Int32
		}
		d.Orchestrations = append(d.Orchestrations, o)
		return nil
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// batchCounts returns a run's batch executions, by batch name then id, with
// their item counts summed from the run's status_count rows, and adds those
// counts to run. It is the one query behind RunDetail and Progress; q is the
// caller's pool (the read pool for both). The slice is never nil.
func batchCounts(ctx context.Context, q *sql.DB, runID uuid.UUID, run Counts) ([]BatchSummary, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT be.id, be.batch_id, b.name, b.is_active, be.status, be.started_at, be.finished_at, sc.status, coalesce(sc.n, 0)
		FROM batch_execution be
		JOIN batch b ON b.id = be.batch_id
		LEFT JOIN (
			SELECT batch_execution_id, status, sum(delta) AS n
			FROM status_count WHERE run_id = $1
			GROUP BY batch_execution_id, status
		) sc ON sc.batch_execution_id = be.id
		WHERE be.run_id = $1
		ORDER BY b.name COLLATE "C", be.id`, runID)
	batches := []BatchSummary{}
	index := map[uuid.UUID]int{}
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			b        BatchSummary
			status   string
			from, to sql.NullTime
			scStatus sql.NullString
			n        int64
		)
		if err := rows.Scan(&b.ID, &b.Batch.ID, &b.Batch.Name, &b.Batch.Active, &status, &from, &to, &scStatus, &n); err != nil {
			return err
		}
		i, ok := index[b.ID]
		if !ok {
			b.Status, b.StartedAt, b.FinishedAt, b.Counts = runledger.ExecutionStatus(status), timePtr(from), timePtr(to), Counts{}
			b.DurationMS = millis(b.StartedAt, b.FinishedAt)
			i = len(batches)
			index[b.ID] = i
			batches = append(batches, b)
		}
		if scStatus.Valid && n != 0 {
			st := runledger.ExecutionStatus(scStatus.String)
			batches[i].Counts[st] += n
			batches[i].Total += n
			run[st] += n
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return batches, nil
}

// HistoryEntry is one status change of an item execution.
type HistoryEntry struct {
	From  *runledger.ExecutionStatus `json:"from"` // null for the first entry
	To    runledger.ExecutionStatus  `json:"to"`
	At    time.Time                  `json:"at"`
	Actor string                     `json:"actor,omitempty"` // who made the change (created_by)
}

// ItemSummary is an item execution as lists show it, with its history.
type ItemSummary struct {
	ID               uuid.UUID                 `json:"id"` // the item execution
	RunID            uuid.UUID                 `json:"run_id"`
	BatchExecutionID uuid.UUID                 `json:"batch_execution_id"`
	Batch            Ref                       `json:"batch"`
	ItemID           uuid.UUID                 `json:"item_id"`
	SequenceNumber   int32                     `json:"sequence_number"`
	Status           runledger.ExecutionStatus `json:"status"`
	AttemptCount     int32                     `json:"attempts"`
	MaxAttempts      *int32                    `json:"max_attempts,omitempty"`
	ErrorMessage     string                    `json:"error,omitempty"`
	ClaimedBy        string                    `json:"claimed_by,omitempty"`
	StartedAt        *time.Time                `json:"started_at,omitempty"`
	FinishedAt       *time.Time                `json:"finished_at,omitempty"`
	DurationMS       *int64                    `json:"duration_ms,omitempty"`
	History          []HistoryEntry            `json:"history"`
}

// Duration is finished_at - started_at (until now while unfinished), and
// false before the item was first claimed.
func (i ItemSummary) Duration() (time.Duration, bool) { return span(i.StartedAt, i.FinishedAt) }

// ItemFilter selects the items FailedItems lists.
type ItemFilter struct {
	// Statuses to list (default failed and timed_out).
	Statuses []runledger.ExecutionStatus
	// After is the Next cursor of the previous page.
	After string
	// Limit is the page size (default DefaultPageSize, at most MaxPageSize).
	Limit int
}

// ItemPage is a page of item executions in id order.
type ItemPage struct {
	Items []ItemSummary `json:"items"`
	Next  string        `json:"next,omitempty"`
}

const itemColumns = `ie.id, ie.run_id, ie.batch_execution_id, b.id, b.name, b.is_active, ie.item_id, i.sequence_number, ie.status,
	ie.attempt_count, ie.max_attempts, coalesce(ie.error_message, ''), coalesce(ie.claimed_by, ''), ie.started_at, ie.finished_at`

const itemJoins = `JOIN batch_execution be ON be.id = ie.batch_execution_id
	JOIN batch b ON b.id = be.batch_id
	JOIN item i ON i.id = ie.item_id`

func scanItem(row interface{ Scan(...any) error }, extra ...any) (ItemSummary, error) {
	var (
		it       ItemSummary
		status   string
		max      sql.NullInt32
		from, to sql.NullTime
	)
	err := row.Scan(append([]any{&it.ID, &it.RunID, &it.BatchExecutionID, &it.Batch.ID, &it.Batch.Name, &it.Batch.Active, &it.ItemID, &it.SequenceNumber, &status,
		&it.AttemptCount, &max, &it.ErrorMessage, &it.ClaimedBy, &from, &to}, extra...)...)
	it.Status, it.StartedAt, it.FinishedAt = runledger.ExecutionStatus(status), timePtr(from), timePtr(to)
	it.DurationMS = millis(it.StartedAt, it.FinishedAt)
	if max.Valid {
		it.MaxAttempts = &max.Int32
	}
	it.History = []HistoryEntry{}
	return it, err
}

// FailedItems returns a page of a run's items in the given statuses (default
// failed and timed_out), each with its error and history, in id order.
func (c *Client) FailedItems(ctx context.Context, runID uuid.UUID, f ItemFilter) (*ItemPage, error) {
	limit, err := pageSize(f.Limit)
	if err != nil {
		return nil, err
	}
	if len(f.Statuses) == 0 {
		f.Statuses = []runledger.ExecutionStatus{runledger.StatusFailed, runledger.StatusTimedOut}
	}
	statuses, err := statusNames(f.Statuses)
	if err != nil {
		return nil, err
	}
	var after any
	if f.After != "" {
		u, err := uuid.Parse(f.After)
		if err != nil {
			return nil, &runledger.InvalidError{Field: "after", Reason: "not a cursor this list returned"}
		}
		after = u
	}
	var exists bool
	if err := c.read.SQL().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM run WHERE id = $1)`, runID).Scan(&exists); err != nil {
		return nil, translate(ctx, err)
	}
	if !exists {
		return nil, fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
	}
	page := &ItemPage{Items: []ItemSummary{}}
	rows, err := c.read.SQL().QueryContext(ctx, `
		SELECT `+itemColumns+`
		FROM item_execution ie `+itemJoins+`
		WHERE ie.run_id = $1 AND (ie.status)::text = ANY ($2::text[])
			AND ($3::uuid IS NULL OR ie.id > $3::uuid)
		ORDER BY ie.id
		LIMIT $4`, runID, statuses, after, limit+1)
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		it, err := scanItem(rows)
		page.Items = append(page.Items, it)
		return err
	}); err != nil {
		return nil, err
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Next = page.Items[limit-1].ID.String()
	}
	return page, c.fillHistory(ctx, page.Items)
}

// fillHistory loads the history of items in one statement.
func (c *Client) fillHistory(ctx context.Context, items []ItemSummary) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(items))
	at := make(map[uuid.UUID]int, len(items))
	for i, it := range items {
		ids[i] = it.ID
		at[it.ID] = i
	}
	rows, err := c.read.SQL().QueryContext(ctx, `
		SELECT h.item_execution_id, coalesce(h.previous_status, ''), h.new_status, h.changed_at, coalesce(h.created_by, '')
		FROM item_state_history h
		WHERE h.item_execution_id = ANY ($1::uuid[])
		ORDER BY h.item_execution_id, h.changed_at, h.id`, uuidArray(ids))
	return each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			id       uuid.UUID
			h        HistoryEntry
			from, to string
		)
		if err := rows.Scan(&id, &from, &to, &h.At, &h.Actor); err != nil {
			return err
		}
		h.To = runledger.ExecutionStatus(to)
		if from != "" {
			st := runledger.ExecutionStatus(from)
			h.From = &st
		}
		it := &items[at[id]]
		it.History = append(it.History, h)
		return nil
	})
}

// Payload is a JSON document as a view shows it: whole when it fits the
// limit, else a truncated text preview.
type Payload struct {
	// JSON is the document; nil when there is none or it was truncated.
	JSON json.RawMessage
	// Size is the document's length in bytes (0 for none).
	Size int
	// Truncated tells that the document exceeded the limit; Preview then
	// holds its first bytes (not valid JSON).
	Truncated bool
	Preview   string
}

// ItemDetail is one item execution with its payload, result and history.
// In JSON the payload is "payload" (the document, as `inspect run -o json`
// has it) with "payload_size", "payload_truncated" and "payload_preview"
// beside it; the result likewise.
type ItemDetail struct {
	ItemSummary
	Automation      Ref        `json:"automation"`
	Payload         Payload    `json:"-"`
	Result          Payload    `json:"-"`
	Retryable       bool       `json:"retryable"`
	CancelRequested bool       `json:"cancel_requested"`
	Priority        int32      `json:"priority"`
	NotBefore       time.Time  `json:"not_before"`
	LeaseExpiresAt  *time.Time `json:"lease_expires_at,omitempty"`
}

// ItemExecution returns an item execution with its item's payload, its
// result, error, attempts and full history with the actor of every change.
// Payloads longer than maxPayload bytes (default DefaultMaxPayload when
// maxPayload <= 0) come back as a truncated preview: the database sends at
// most that much.
func (c *Client) ItemExecution(ctx context.Context, id uuid.UUID, maxPayload int) (*ItemDetail, error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	var (
		d                       ItemDetail
		payload, result         sql.NullString
		payloadSize, resultSize sql.NullInt64
		lease                   sql.NullTime
	)
	it, err := scanItem(c.read.SQL().QueryRowContext(ctx, `
		SELECT `+itemColumns+`, r.automation_id, a.name, a.is_active,
			left(i.payload::text, $2), octet_length(i.payload::text),
			left(ie.result_payload::text, $2), octet_length(ie.result_payload::text),
			ie.retryable, ie.cancel_requested, ie.priority, ie.not_before, ie.lease_expires_at
		FROM item_execution ie `+itemJoins+`
		JOIN run r ON r.id = ie.run_id
		JOIN automation a ON a.id = r.automation_id
		WHERE ie.id = $1`, id, maxPayload),
		&d.Automation.ID, &d.Automation.Name, &d.Automation.Active, &payload, &payloadSize, &result, &resultSize,
		&d.Retryable, &d.CancelRequested, &d.Priority, &d.NotBefore, &lease)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution: item execution %s: %w", id, runledger.ErrNotFound)
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	d.ItemSummary = it
	d.LeaseExpiresAt = timePtr(lease)
	d.Payload = capped(payload, payloadSize, maxPayload)
	d.Result = capped(result, resultSize, maxPayload)
	items := []ItemSummary{d.ItemSummary}
	if err := c.fillHistory(ctx, items); err != nil {
		return nil, err
	}
	d.ItemSummary = items[0]
	return &d, nil
}

// capped builds a Payload from a document's first max characters and its
// full size in bytes. A preview is cut at max bytes, on a character
// boundary.
func capped(text sql.NullString, size sql.NullInt64, max int) Payload {
	if !text.Valid {
		return Payload{}
	}
	p := Payload{Size: int(size.Int64)}
	if p.Size <= max {
		p.JSON = json.RawMessage(text.String)
		return p
	}
	p.Truncated = true
	p.Preview = text.String
	if len(p.Preview) > max {
		p.Preview = strings.ToValidUTF8(p.Preview[:max], "")
	}
	return p
}

// MarshalJSON flattens the payload and the result next to the other fields.
func (d ItemDetail) MarshalJSON() ([]byte, error) {
	type plain ItemDetail
	return json.Marshal(struct {
		plain
		Payload          json.RawMessage `json:"payload,omitempty"`
		PayloadSize      int             `json:"payload_size"`
		PayloadTruncated bool            `json:"payload_truncated,omitempty"`
		PayloadPreview   string          `json:"payload_preview,omitempty"`
		Result           json.RawMessage `json:"result,omitempty"`
		ResultSize       int             `json:"result_size"`
		ResultTruncated  bool            `json:"result_truncated,omitempty"`
		ResultPreview    string          `json:"result_preview,omitempty"`
	}{
		plain(d),
		d.Payload.JSON, d.Payload.Size, d.Payload.Truncated, d.Payload.Preview,
		d.Result.JSON, d.Result.Size, d.Result.Truncated, d.Result.Preview,
	})
}
