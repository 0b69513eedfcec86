package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

// printRunTree prints automation -> run -> orchestration -> batch
// executions (with counts) -> item executions -> history, as
// report.LoadRun loads them.
func printRunTree(ctx context.Context, w io.Writer, d *db.DB, exec *execution.Client, runID uuid.UUID) error {
	r, err := report.LoadRun(ctx, d, exec, runID)
	if err != nil {
		return err
	}
	renderRun(w, r)
	return nil
}

// renderRun writes r as a tree.
func renderRun(w io.Writer, r *report.Run) {
	if r.Automation.Name != "" {
		fmt.Fprintf(w, "automation %s%s\n", r.Automation.Name, inactive(r.Automation))
	}
	corr := ""
	if r.CorrelationID != "" {
		corr = " correlation=" + r.CorrelationID
	}
	fmt.Fprintf(w, "└── run %s [%s]%s%s  %s\n", r.ID, r.Status, dur(r.DurationMS), corr, report.CountsLine(r.Counts))
	if r.CancellationReason != "" {
		fmt.Fprintf(w, "    │   cancelled: %s\n", r.CancellationReason)
	}
	if r.ErrorSummary != "" {
		fmt.Fprintf(w, "    │   error summary: %s\n", r.ErrorSummary)
	}
	for _, o := range r.Orchestrations {
		eng := ""
		if o.Engine != "" {
			eng = o.Engine + " (" + o.EngineType + ") "
		}
		state := ""
		if o.State != "" {
			state = " state=" + o.State
		}
		secs := ""
		if o.DurationSeconds != nil {
			secs = fmt.Sprintf(" %ds", *o.DurationSeconds)
		}
		fmt.Fprintf(w, "    ├── orchestration %s%s [%s]%s%s\n", eng, o.ExternalID, o.Status, state, secs)
	}
	for i, b := range r.Batches {
		branch, indent := "├── ", "│   "
		if i == len(r.Batches)-1 {
			branch, indent = "└── ", "    "
		}
		fmt.Fprintf(w, "    %sbatch %s%s [%s]%s  %s\n", branch, b.Batch.Name, inactive(b.Batch), b.Status, dur(b.DurationMS), report.CountsLine(b.Counts))
		for j, it := range b.Items {
			ibranch, iindent := "├── ", "│   "
			if j == len(b.Items)-1 && b.MoreProblems <= 0 {
				ibranch, iindent = "└── ", "    "
			}
			fmt.Fprintf(w, "    %s%sitem %s [%s] attempts=%d%s\n", indent, ibranch, itemLabel(it), it.Status, it.Attempts, dur(it.DurationMS))
			if it.Error != "" {
				fmt.Fprintf(w, "    %s%s  error: %s\n", indent, iindent, it.Error)
			}
			steps := make([]string, 0, len(it.History))
			for _, h := range it.History {
				steps = append(steps, string(h.To))
			}
			fmt.Fprintf(w, "    %s%s  history: %s\n", indent, iindent, strings.Join(steps, " → "))
		}
		if b.MoreProblems > 0 {
			fmt.Fprintf(w, "    %s└── … %d more failed items\n", indent, b.MoreProblems)
		}
	}
}

// inactive marks a soft-deleted definition.
func inactive(d report.Definition) string {
	if d.Active {
		return ""
	}
	return " (deleted)"
}

func itemLabel(it report.ItemExecution) string {
	label := fmt.Sprintf("#%d", it.SequenceNumber)
	if inv, ok := it.Payload["invoice"]; ok {
		label += fmt.Sprintf(" %v", inv)
	}
	return label
}

func dur(ms *int64) string {
	if ms == nil {
		return ""
	}
	return " " + (time.Duration(*ms) * time.Millisecond).String()
}
