package cli

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

func newRetryCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Put a finished run's failed and timed-out items back to queued with fresh attempts",
		Long: `retry puts the failed and timed-out items of a finished run (with
--cancelled, its cancelled items too) back to queued, with as many fresh
attempts as a new run gets, and reopens their batch executions and the run.
One transaction; the history records each change with the acting user.
A run that is not finished is refused.`,
		Example: "  runledger retry 0190c3f4-8a51-7b7e-9c1d-2f5a6b7c8d9e --cancelled",
		Args:    runIDArg,
	}
	url := addURLFlag(cmd)
	out := addOutputFlag(cmd)
	cancelled := cmd.Flags().Bool("cancelled", false, "also retry cancelled items")
	actor := cmd.Flags().String("actor", "", "acting user recorded in the history (default $USER, else \"cli\")")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := uuid.Parse(args[0])
		if err != nil {
			return usageErrorf("%q is not a run ID (a UUID)", args[0])
		}
		statuses := []runledger.ExecutionStatus{runledger.StatusFailed, runledger.StatusTimedOut}
		if *cancelled {
			statuses = append(statuses, runledger.StatusCancelled)
		}
		d, err := openDB(cmd.Context(), env, *url)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		x := execution.New(d, execution.Options{})
		defer func() { _ = x.Close() }()
		who := *actor
		if who == "" {
			who = env.Getenv("USER")
		}
		if who == "" {
			who = "cli"
		}
		res, err := x.RetryItems(runledger.WithActor(cmd.Context(), who), id, statuses...)
		if err != nil {
			return err
		}
		r := report.NewRetry(id, res)
		if *out == outputJSON {
			return writeJSON(env.Stdout, r)
		}
		if r.Items == 0 {
			fmt.Fprintf(env.Stdout, "run %s: nothing to retry\n", id)
			return nil
		}
		fmt.Fprintf(env.Stdout, "run %s: %d item(s) back to queued, %d batch execution(s) reopened, run queued\n", id, r.Items, r.BatchExecutions)
		return nil
	}
	return cmd
}
