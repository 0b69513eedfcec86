// Package report holds the machine-readable shapes of runledger's read
// commands: `migrate status -o json`, `progress -o json` and
// `inspect run -o json`. The dashboard's JSON API serves the same shapes.
// They are plain structs with stable JSON field names, documented in
// docs/cli.md; a field is only ever added, never renamed or removed.
package report

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/ent/runorchestration"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/migrate"
)

// RunNotFoundError says that no run has the ID. It matches
// runledger.ErrNotFound with errors.Is; every command words it the same:
// "run ID not found".
type RunNotFoundError struct{ ID uuid.UUID }

func (e *RunNotFoundError) Error() string { return fmt.Sprintf("run %s not found", e.ID) }

// Is reports whether target is runledger.ErrNotFound.
func (e *RunNotFoundError) Is(target error) bool { return target == runledger.ErrNotFound }

// runNotFound turns a not-found error about run id into a RunNotFoundError
// and returns other errors as they are.
func runNotFound(id uuid.UUID, err error) error {
	if errors.Is(err, runledger.ErrNotFound) || ent.IsNotFound(err) {
		return &RunNotFoundError{ID: id}
	}
	return err
}

// Counts is a number of items by status; statuses with no items are left out.
type Counts map[runledger.ExecutionStatus]int64

func countsOf(c execution.Counts) Counts {
	out := Counts{}
	for s, n := range c {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}

// MigrationStatus is `migrate status -o json`.
type MigrationStatus struct {
	Database    string   `json:"database"`               // host:port/dbname, never credentials
	Current     string   `json:"current"`                // last fully applied version; "" for none
	Applied     int      `json:"applied"`                // number of applied files
	Pending     []string `json:"pending"`                // file names not yet applied, in order
	Dirty       bool     `json:"dirty"`                  // a revision was left partial or failed
	DirtyReason string   `json:"dirty_reason,omitempty"` // why, when Dirty
}

// NewMigrationStatus builds a MigrationStatus from migrate.Status's result;
// database is the described (password-free) database.
func NewMigrationStatus(database string, st *migrate.StatusResult) MigrationStatus {
	out := MigrationStatus{Database: database, Current: st.Current, Applied: st.Applied, Pending: []string{}, Dirty: st.Dirty, DirtyReason: st.Reason}
	for _, f := range st.Pending {
		out.Pending = append(out.Pending, f.Name())
	}
	return out
}

// Progress is `progress -o json`: a run's item counts, in all and per batch
// execution.
type Progress struct {
	RunID    uuid.UUID                 `json:"run_id"`
	Status   runledger.ExecutionStatus `json:"status"`
	Total    int64                     `json:"total"`    // items in the run
	Finished int64                     `json:"finished"` // items in a terminal status
	Counts   Counts                    `json:"counts"`
	Batches  []BatchProgress           `json:"batches"` // by batch name
	// Staleness is set when the counts were read from a standby.
	Staleness *db.Staleness `json:"staleness,omitempty"`
}

// BatchProgress is one batch execution's counts.
type BatchProgress struct {
	ID       uuid.UUID                 `json:"id"` // the batch execution
	BatchID  uuid.UUID                 `json:"batch_id"`
	Name     string                    `json:"name"`
	Status   runledger.ExecutionStatus `json:"status"`
	Total    int64                     `json:"total"`
	Finished int64                     `json:"finished"`
	Counts   Counts                    `json:"counts"`
}

// NewProgress builds a Progress from execution.Progress.
func NewProgress(p *execution.Progress) Progress {
	out := Progress{RunID: p.RunID, Status: p.Status, Total: p.Counts.Total(), Finished: p.Counts.Finished(), Counts: countsOf(p.Counts), Batches: []BatchProgress{}, Staleness: p.Staleness}
	for _, b := range p.Batches {
		out.Batches = append(out.Batches, BatchProgress{ID: b.ID, BatchID: b.BatchID, Name: b.Name, Status: b.Status, Total: b.Counts.Total(), Finished: b.Counts.Finished(), Counts: countsOf(b.Counts)})
	}
	return out
}

// LoadProgress reads the progress of run id. A missing run is a
// RunNotFoundError.
func LoadProgress(ctx context.Context, exec *execution.Client, id uuid.UUID) (Progress, error) {
	p, err := exec.Progress(ctx, id)
	if err != nil {
		return Progress{}, runNotFound(id, err)
	}
	return NewProgress(p), nil
}

// Run is `inspect run -o json`: a run with its automation, orchestration
// links and batch executions, and for each batch execution the items worth
// reading (all of them in a small batch, else the ones that did not succeed).
type Run struct {
	ID                 uuid.UUID                 `json:"id"`
	Status             runledger.ExecutionStatus `json:"status"`
	Automation         Definition                `json:"automation"`
	CorrelationID      string                    `json:"correlation_id,omitempty"`
	StartedAt          *time.Time                `json:"started_at,omitempty"`
	FinishedAt         *time.Time                `json:"finished_at,omitempty"`
	DurationMS         *int64                    `json:"duration_ms,omitempty"` // finished - started
	CancellationReason string                    `json:"cancellation_reason,omitempty"`
	ErrorSummary       string                    `json:"error_summary,omitempty"`
	Total              int64                     `json:"total"`
	Counts             Counts                    `json:"counts"`
	Orchestrations     []Orchestration           `json:"orchestrations"`
	Batches            []BatchExecution          `json:"batches"` // by batch name
	// Staleness is set when the run was read from a standby.
	Staleness *db.Staleness `json:"staleness,omitempty"`
}

// Definition names a definition row (automation or batch); Active is false
// once it is soft-deleted.
type Definition struct {
	ID     uuid.UUID `json:"id"`
	Name   string    `json:"name"`
	Active bool      `json:"active"`
}

// Orchestration is a run's link to an engine's instance (a Jenkins build, an
// Argo workflow).
type Orchestration struct {
	ID              uuid.UUID                 `json:"id"` // the orchestration instance
	Engine          string                    `json:"engine"`
	EngineType      string                    `json:"engine_type"`
	ExternalID      string                    `json:"external_id"`
	Status          runledger.ExecutionStatus `json:"status"`
	State           string                    `json:"state,omitempty"` // the engine's own word
	DurationSeconds *int32                    `json:"duration_seconds,omitempty"`
}

// Items listing modes of a BatchExecution.
const (
	ListedAll      = "all"      // every item of the batch execution
	ListedProblems = "problems" // the failed and timed-out ones, up to a limit
)

// BatchExecution is one batch's execution in a run.
type BatchExecution struct {
	ID         uuid.UUID                 `json:"id"`
	Batch      Definition                `json:"batch"`
	Status     runledger.ExecutionStatus `json:"status"`
	StartedAt  *time.Time                `json:"started_at,omitempty"`
	FinishedAt *time.Time                `json:"finished_at,omitempty"`
	DurationMS *int64                    `json:"duration_ms,omitempty"`
	Total      int64                     `json:"total"`
	Counts     Counts                    `json:"counts"`
	Listed     string                    `json:"listed"` // ListedAll or ListedProblems
	Items      []ItemExecution           `json:"items"`
	// MoreProblems is the number of failed or timed-out items not listed.
	MoreProblems int64 `json:"more_problems"`
}

// ItemExecution is one item's execution, with its status history.
type ItemExecution struct {
	ID             uuid.UUID                 `json:"id"`
	ItemID         uuid.UUID                 `json:"item_id"`
	SequenceNumber int32                     `json:"sequence_number"`
	Payload        map[string]any            `json:"payload,omitempty"` // the item's payload
	Status         runledger.ExecutionStatus `json:"status"`
	Attempts       int32                     `json:"attempts"`
	StartedAt      *time.Time                `json:"started_at,omitempty"`
	FinishedAt     *time.Time                `json:"finished_at,omitempty"`
	DurationMS     *int64                    `json:"duration_ms,omitempty"`
	Error          string                    `json:"error,omitempty"`
	History        []Transition              `json:"history"`
}

// Transition is one row of an item's state history.
type Transition struct {
	From *runledger.ExecutionStatus `json:"from"` // null for the first
	To   runledger.ExecutionStatus  `json:"to"`
	At   time.Time                  `json:"at"`
}

// Item listing limits: a batch execution with at most ListAllUpTo items
// lists all of them; a larger one lists up to ListProblems of its failed and
// timed-out items.
const (
	ListAllUpTo  = 8
	ListProblems = 10
)

// LoadRun reads run id: the run, its automation, orchestrations and batch
// executions with their counts from exec.RunDetail, then the listed items
// of each batch execution by graph traversal (item executions, their items,
// their history: one query per level). exec must be a Client over d: both
// read from d.Reader(), and when that is a read-only pool (a standby)
// Staleness says how fresh it is, read first.
//
// It answers as ent's graph does: a soft-deleted run is not found (unless
// ctx is runledger.WithInactive), and orchestration links that were
// soft-deleted are listed, as everything eager-loaded under a run is
// (RunDetail leaves them out: then they are loaded through ent). A missing
// run is a RunNotFoundError.
func LoadRun(ctx context.Context, d *db.DB, exec *execution.Client, id uuid.UUID) (*Run, error) {
	read := d.Reader()
	var staleness *db.Staleness
	if read.ReadOnly() {
		st, err := read.Staleness(ctx)
		if err != nil {
			return nil, fmt.Errorf("load run %s: %w", id, err)
		}
		staleness = st
	}
	var active, detached bool
	err := read.SQL().QueryRowContext(ctx, `SELECT is_active, EXISTS (SELECT 1 FROM run_orchestration WHERE run_id = $1 AND NOT is_active)
		FROM run WHERE id = $1`, id).Scan(&active, &detached)
	switch {
	case errors.Is(err, sql.ErrNoRows), err == nil && !active && !runledger.IncludesInactive(ctx):
		return nil, &RunNotFoundError{ID: id}
	case err != nil:
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	r, err := exec.RunDetail(ctx, id)
	if err != nil {
		if err = runNotFound(id, err); errors.Is(err, runledger.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	out := &Run{
		ID: r.ID, Status: r.Status, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DurationMS: r.DurationMS,
		CorrelationID: r.CorrelationID, CancellationReason: r.CancellationReason, ErrorSummary: r.ErrorSummary,
		Automation: Definition(r.Automation),
		Total:      r.Counts.Total(), Counts: countsOf(r.Counts),
		Orchestrations: []Orchestration{}, Batches: []BatchExecution{},
		Staleness: staleness,
	}
	if detached {
		if out.Orchestrations, err = loadOrchestrations(ctx, read.Client, id); err != nil {
			return nil, err
		}
	} else {
		for _, o := range r.Orchestrations {
			out.Orchestrations = append(out.Orchestrations, Orchestration{
				ID: o.ID, Engine: o.Engine, EngineType: o.EngineType, ExternalID: o.ExternalID,
				Status: o.Status, State: o.State, DurationSeconds: o.DurationSeconds,
			})
		}
	}
	for _, be := range r.Batches {
		c := be.Counts
		b := BatchExecution{
			ID: be.ID, Batch: Definition(be.Batch), Status: be.Status,
			StartedAt: be.StartedAt, FinishedAt: be.FinishedAt, DurationMS: be.DurationMS,
			Total: c.Total(), Counts: countsOf(c), Listed: ListedAll, Items: []ItemExecution{},
		}
		q := read.ItemExecution.Query().Where(itemexecution.BatchExecutionID(be.ID))
		if c.Total() > ListAllUpTo {
			b.Listed = ListedProblems
			q = q.Where(itemexecution.StatusIn(runledger.StatusFailed, runledger.StatusTimedOut))
			b.MoreProblems = max(0, c[runledger.StatusFailed]+c[runledger.StatusTimedOut]-ListProblems)
		}
		ies, err := q.WithItem().
			WithHistory(func(q *ent.ItemStateHistoryQuery) { q.Order(itemstatehistory.ByChangedAt()) }).
			Order(itemexecution.ByItemField("sequence_number")).
			Limit(ListProblems).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("load items of batch %s: %w", b.Batch.Name, err)
		}
		for _, ie := range ies {
			it := ItemExecution{
				ID: ie.ID, ItemID: ie.ItemID, Status: ie.Status, Attempts: ie.AttemptCount,
				StartedAt: ie.StartedAt, FinishedAt: ie.FinishedAt, DurationMS: millis(ie.Duration()),
				Error: deref(ie.ErrorMessage), History: []Transition{},
			}
			if item := ie.Edges.Item; item != nil {
				it.SequenceNumber, it.Payload = item.SequenceNumber, item.Payload
			}
			for _, h := range ie.Edges.History {
				it.History = append(it.History, Transition{From: h.PreviousStatus, To: h.NewStatus, At: h.ChangedAt})
			}
			b.Items = append(b.Items, it)
		}
		out.Batches = append(out.Batches, b)
	}
	// By name byte by byte, whatever the database's collation.
	sort.SliceStable(out.Batches, func(i, j int) bool { return out.Batches[i].Batch.Name < out.Batches[j].Batch.Name })
	return out, nil
}

// loadOrchestrations loads the orchestrations of run id through ent, the
// soft-deleted links included, in the order of attachment.
func loadOrchestrations(ctx context.Context, client *ent.Client, id uuid.UUID) ([]Orchestration, error) {
	r, err := client.Run.Query().Where(run.ID(id)).
		WithOrchestrations(func(q *ent.RunOrchestrationQuery) {
			// RunDetail's order.
			q.Order(runorchestration.ByAttachedAt(), runorchestration.ByOrchestrationInstanceID()).
				WithOrchestrationInstance(func(q *ent.OrchestrationInstanceQuery) { q.WithEngine() })
		}).
		Only(runledger.WithInactive(ctx))
	if err != nil {
		return nil, fmt.Errorf("load orchestrations of run %s: %w", id, runNotFound(id, err))
	}
	out := []Orchestration{}
	for _, ro := range r.Edges.Orchestrations {
		inst := ro.Edges.OrchestrationInstance
		if inst == nil {
			continue
		}
		o := Orchestration{ID: inst.ID, ExternalID: inst.ExternalID, Status: inst.Status, DurationSeconds: inst.DurationSeconds}
		if e := inst.Edges.Engine; e != nil {
			o.Engine, o.EngineType = e.Name, e.Type
		}
		if s, ok := inst.InstanceMetadata[execution.MetadataState]; ok {
			o.State = fmt.Sprint(s)
		}
		out = append(out, o)
	}
	return out, nil
}

func millis(d time.Duration, ok bool) *int64 {
	if !ok {
		return nil
	}
	ms := d.Milliseconds()
	return &ms
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
