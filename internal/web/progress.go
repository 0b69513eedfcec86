package web

import (
	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// Progress is GET /api/runs/{id}/progress and the data of the "progress"
// event.
type Progress struct {
	RunID    uuid.UUID                 `json:"run_id"`
	Status   runledger.ExecutionStatus `json:"status"`
	Total    int64                     `json:"total"`
	Finished int64                     `json:"finished"`
	Counts   execution.Counts          `json:"counts"`
	Batches  []BatchProgress           `json:"batches"`
}

// BatchProgress is one batch execution's counts.
type BatchProgress struct {
	ID       uuid.UUID                 `json:"id"`
	BatchID  uuid.UUID                 `json:"batch_id"`
	Name     string                    `json:"name"`
	Status   runledger.ExecutionStatus `json:"status"`
	Total    int64                     `json:"total"`
	Finished int64                     `json:"finished"`
	Counts   execution.Counts          `json:"counts"`
}

func progressOf(d *execution.RunDetail) Progress {
	p := Progress{RunID: d.ID, Status: d.Status, Total: d.Counts.Total(), Finished: d.Counts.Finished(), Counts: d.Counts, Batches: []BatchProgress{}}
	for _, b := range d.Batches {
		p.Batches = append(p.Batches, BatchProgress{ID: b.ID, BatchID: b.Batch.ID, Name: b.Batch.Name, Status: b.Status,
			Total: b.Counts.Total(), Finished: b.Counts.Finished(), Counts: b.Counts})
	}
	return p
}
