package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/ent/run"
)

// printRunTree prints automation -> run -> batch executions -> item
// executions -> history, loaded by graph traversal in one query per level.
func printRunTree(ctx context.Context, w io.Writer, client *ent.Client, runID uuid.UUID) error {
	r, err := client.Run.Query().Where(run.ID(runID)).
		WithAutomation().
		WithOrchestrations(func(q *ent.RunOrchestrationQuery) {
			q.WithOrchestrationInstance(func(q *ent.OrchestrationInstanceQuery) { q.WithEngine() })
		}).
		WithBatchExecutions(func(q *ent.BatchExecutionQuery) {
			q.WithBatch().Order(ent.Asc("created_at"), ent.Asc("id")).WithItemExecutions(func(q *ent.ItemExecutionQuery) {
				q.WithItem().WithHistory(func(q *ent.ItemStateHistoryQuery) {
					q.Order(ent.Asc(itemstatehistory.FieldChangedAt))
				})
			})
		}).
		Only(ctx)
	if err != nil {
		return fmt.Errorf("load run %s: %w", runID, err)
	}
	a := r.Edges.Automation
	if a != nil {
		fmt.Fprintf(w, "automation %s\n", a.Name)
	}
	fmt.Fprintf(w, "└── run %s [%s]%s%s\n", r.ID, r.Status, dur(r.Duration()), opt(" correlation=", r.CorrelationID))
	if r.ErrorSummary != nil {
		fmt.Fprintf(w, "    │   error summary: %s\n", *r.ErrorSummary)
	}
	for _, ro := range r.Edges.Orchestrations {
		if inst := ro.Edges.OrchestrationInstance; inst != nil {
			eng := ""
			if inst.Edges.Engine != nil {
				eng = inst.Edges.Engine.Name + " (" + inst.Edges.Engine.Type + ") "
			}
			fmt.Fprintf(w, "    ├── orchestration %s%s [%s]%s\n", eng, inst.ExternalID, inst.Status, dur(inst.Duration()))
		}
	}
	bes := r.Edges.BatchExecutions
	for i, be := range bes {
		last := i == len(bes)-1
		branch, indent := "├── ", "│   "
		if last {
			branch, indent = "└── ", "    "
		}
		name := ""
		if be.Edges.Batch != nil {
			name = be.Edges.Batch.Name
		}
		fmt.Fprintf(w, "    %sbatch %s [%s]%s\n", branch, name, be.Status, dur(be.Duration()))
		ies := be.Edges.ItemExecutions
		sortItems(ies)
		for j, ie := range ies {
			ibranch, iindent := "├── ", "│   "
			if j == len(ies)-1 {
				ibranch, iindent = "└── ", "    "
			}
			label := ie.ItemID.String()[:8]
			if it := ie.Edges.Item; it != nil {
				label = fmt.Sprintf("#%d", it.SequenceNumber)
				if inv, ok := it.Payload["invoice"]; ok {
					label += fmt.Sprintf(" %v", inv)
				}
			}
			fmt.Fprintf(w, "    %s%sitem %s [%s] attempts=%d%s\n", indent, ibranch, label, ie.Status, ie.AttemptCount, dur(ie.Duration()))
			if ie.ErrorMessage != nil {
				fmt.Fprintf(w, "    %s%s  error: %s\n", indent, iindent, *ie.ErrorMessage)
			}
			var steps []string
			for _, h := range ie.Edges.History {
				steps = append(steps, string(h.NewStatus))
			}
			fmt.Fprintf(w, "    %s%s  history: %s\n", indent, iindent, strings.Join(steps, " → "))
		}
	}
	return nil
}

func sortItems(ies []*ent.ItemExecution) {
	seq := func(ie *ent.ItemExecution) int32 {
		if ie.Edges.Item != nil {
			return ie.Edges.Item.SequenceNumber
		}
		return 0
	}
	for i := 1; i < len(ies); i++ {
		for j := i; j > 0 && seq(ies[j]) < seq(ies[j-1]); j-- {
			ies[j], ies[j-1] = ies[j-1], ies[j]
		}
	}
}

func dur(d time.Duration, ok bool) string {
	if !ok {
		return ""
	}
	return " " + d.Round(time.Millisecond).String()
}

func opt(prefix string, s *string) string {
	if s == nil {
		return ""
	}
	return prefix + *s
}
