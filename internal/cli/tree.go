package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/execution"
)

// listAllUpTo: a batch with at most this many items lists every item;
// larger ones list only the items that did not succeed (up to listProblems).
const (
	listAllUpTo  = 8
	listProblems = 10
)

// printRunTree prints automation -> run -> orchestration -> batch
// executions (with counts) -> item executions -> history, loaded by graph
// traversal with one query per level.
func printRunTree(ctx context.Context, w io.Writer, client *ent.Client, exec *execution.Client, runID uuid.UUID) error {
	r, err := client.Run.Query().Where(run.ID(runID)).
		WithAutomation().
		WithOrchestrations(func(q *ent.RunOrchestrationQuery) {
			q.WithOrchestrationInstance(func(q *ent.OrchestrationInstanceQuery) { q.WithEngine() })
		}).
		WithBatchExecutions(func(q *ent.BatchExecutionQuery) { q.WithBatch() }).
		Only(ctx)
	if err != nil {
		return fmt.Errorf("load run %s: %w", runID, err)
	}
	prog, err := exec.Progress(ctx, runID)
	if err != nil {
		return err
	}
	if a := r.Edges.Automation; a != nil {
		fmt.Fprintf(w, "automation %s\n", a.Name)
	}
	fmt.Fprintf(w, "└── run %s [%s]%s%s  %s\n", r.ID, r.Status, dur(r.Duration()), opt(" correlation=", r.CorrelationID), countsLine(prog.Counts))
	if r.CancellationReason != nil {
		fmt.Fprintf(w, "    │   cancelled: %s\n", *r.CancellationReason)
	}
	if r.ErrorSummary != nil {
		fmt.Fprintf(w, "    │   error summary: %s\n", *r.ErrorSummary)
	}
	for _, ro := range r.Edges.Orchestrations {
		if inst := ro.Edges.OrchestrationInstance; inst != nil {
			eng := ""
			if inst.Edges.Engine != nil {
				eng = inst.Edges.Engine.Name + " (" + inst.Edges.Engine.Type + ") "
			}
			state := ""
			if s, ok := inst.InstanceMetadata["state"]; ok {
				state = fmt.Sprintf(" state=%v", s)
			}
			secs := ""
			if inst.DurationSeconds != nil {
				secs = fmt.Sprintf(" %ds", *inst.DurationSeconds)
			}
			fmt.Fprintf(w, "    ├── orchestration %s%s [%s]%s%s\n", eng, inst.ExternalID, inst.Status, state, secs)
		}
	}
	counts := map[uuid.UUID]execution.Counts{}
	for _, bp := range prog.Batches {
		counts[bp.ID] = bp.Counts
	}
	bes := r.Edges.BatchExecutions
	sort.Slice(bes, func(i, j int) bool { return batchName(bes[i]) < batchName(bes[j]) })
	for i, be := range bes {
		branch, indent := "├── ", "│   "
		if i == len(bes)-1 {
			branch, indent = "└── ", "    "
		}
		c := counts[be.ID]
		fmt.Fprintf(w, "    %sbatch %s [%s]%s  %s\n", branch, batchName(be), be.Status, dur(be.Duration()), countsLine(c))
		q := client.ItemExecution.Query().Where(itemexecution.BatchExecutionID(be.ID))
		more := 0
		if c.Total() > listAllUpTo {
			q = q.Where(itemexecution.StatusIn(runledger.StatusFailed, runledger.StatusTimedOut))
			more = int(c[runledger.StatusFailed]+c[runledger.StatusTimedOut]) - listProblems
		}
		ies, err := q.WithItem().
			WithHistory(func(q *ent.ItemStateHistoryQuery) { q.Order(itemstatehistory.ByChangedAt()) }).
			Order(itemexecution.ByItemField("sequence_number")).
			Limit(listProblems).All(ctx)
		if err != nil {
			return fmt.Errorf("load items of batch %s: %w", batchName(be), err)
		}
		for j, ie := range ies {
			ibranch, iindent := "├── ", "│   "
			if j == len(ies)-1 && more <= 0 {
				ibranch, iindent = "└── ", "    "
			}
			fmt.Fprintf(w, "    %s%sitem %s [%s] attempts=%d%s\n", indent, ibranch, itemLabel(ie), ie.Status, ie.AttemptCount, dur(ie.Duration()))
			if ie.ErrorMessage != nil {
				fmt.Fprintf(w, "    %s%s  error: %s\n", indent, iindent, *ie.ErrorMessage)
			}
			steps := make([]string, 0, len(ie.Edges.History))
			for _, h := range ie.Edges.History {
				steps = append(steps, string(h.NewStatus))
			}
			fmt.Fprintf(w, "    %s%s  history: %s\n", indent, iindent, strings.Join(steps, " → "))
		}
		if more > 0 {
			fmt.Fprintf(w, "    %s└── … %d more failed items\n", indent, more)
		}
	}
	return nil
}

func batchName(be *ent.BatchExecution) string {
	if be.Edges.Batch != nil {
		return be.Edges.Batch.Name
	}
	return be.BatchID.String()
}

func itemLabel(ie *ent.ItemExecution) string {
	it := ie.Edges.Item
	if it == nil {
		return ie.ItemID.String()[:8]
	}
	label := fmt.Sprintf("#%d", it.SequenceNumber)
	if inv, ok := it.Payload["invoice"]; ok {
		label += fmt.Sprintf(" %v", inv)
	}
	return label
}

// countsLine renders counts as "12 items: 10 succeeded, 2 failed".
func countsLine(c execution.Counts) string {
	var parts []string
	for _, s := range runledger.AllStatuses {
		if n := c[s]; n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(parts) == 0 {
		return "0 items"
	}
	return fmt.Sprintf("%d items: %s", c.Total(), strings.Join(parts, ", "))
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
