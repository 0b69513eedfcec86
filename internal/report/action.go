package report

import (
	"github.com/google/uuid"

	"github.com/runledger/runledger/execution"
)

// Retry is `retry -o json` and the answer of POST /api/runs/{id}/retry.
type Retry struct {
	RunID           uuid.UUID `json:"run_id"`
	Items           int64     `json:"items"`            // item executions back to queued
	BatchExecutions int64     `json:"batch_executions"` // finished batch executions reopened
	RunReopened     bool      `json:"run_reopened"`     // the run went back to queued
}

// NewRetry builds a Retry from execution.RetryItems's result.
func NewRetry(runID uuid.UUID, r execution.RetryResult) Retry {
	return Retry{RunID: runID, Items: r.Items, BatchExecutions: r.BatchExecutions, RunReopened: r.Run}
}

// Cancel is the answer of POST /api/runs/{id}/cancel.
type Cancel struct {
	RunID     uuid.UUID `json:"run_id"`
	Cancelled int64     `json:"cancelled"` // items cancelled at once
	Flagged   int64     `json:"flagged"`   // running items, cancelled at their worker's next report
	// AlreadyCancelled: the run had been cancelled before; nothing changed.
	AlreadyCancelled bool `json:"already_cancelled"`
}

// NewCancel builds a Cancel from execution.CancelRun's result.
func NewCancel(runID uuid.UUID, r execution.CancelResult) Cancel {
	return Cancel{RunID: runID, Cancelled: r.Cancelled, Flagged: r.Flagged, AlreadyCancelled: r.AlreadyCancelled}
}
