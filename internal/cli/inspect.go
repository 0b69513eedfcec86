package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

// openDB opens the database named by --url or DATABASE_URL.
func openDB(ctx context.Context, env Env, flagURL string) (*db.DB, error) {
	u, err := databaseURL(env, flagURL)
	if err != nil {
		return nil, err
	}
	return db.Open(ctx, db.Config{URL: u})
}

// runIDArg accepts one positional argument, a run ID.
func runIDArg(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("want one run ID, got %d argument(s)", len(args))
	}
	if _, err := uuid.Parse(args[0]); err != nil {
		return usageErrorf("%q is not a run ID (a UUID)", args[0])
	}
	return nil
}

// newRunCmd is a command on one run: "[--url URL] [-o FORMAT] ID". fn gets
// the open database, the run ID and the output format.
func newRunCmd(env Env, use, short string, fn func(ctx context.Context, d *db.DB, id uuid.UUID, out output) error) *cobra.Command {
	cmd := &cobra.Command{Use: use + " ID", Short: short, Args: runIDArg}
	url := addURLFlag(cmd)
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := uuid.Parse(args[0])
		if err != nil {
			return usageErrorf("%q is not a run ID (a UUID)", args[0])
		}
		d, err := openDB(cmd.Context(), env, *url)
		if err != nil {
			return err
		}
		defer d.Close()
		return fn(cmd.Context(), d, id, *out)
	}
	return cmd
}

func newInspectCmd(env Env) *cobra.Command {
	g := newGroup("inspect", "Look at recorded executions")
	g.AddCommand(newRunCmd(env, "run", "Print a run as a tree: batches with counts and durations, failed items with their errors and history",
		func(ctx context.Context, d *db.DB, id uuid.UUID, out output) error {
			r, err := report.LoadRun(ctx, d.Client, execution.New(d, execution.Options{}), id)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(env.Stdout, r)
			}
			renderRun(env.Stdout, r)
			return nil
		}))
	return g
}

func newProgressCmd(env Env) *cobra.Command {
	return newRunCmd(env, "progress", "Print a run's item counts by status, in all and per batch",
		func(ctx context.Context, d *db.DB, id uuid.UUID, out output) error {
			p, err := report.LoadProgress(ctx, execution.New(d, execution.Options{}), id)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(env.Stdout, p)
			}
			fmt.Fprintf(env.Stdout, "run %s [%s] %s\n", p.RunID, p.Status, countsLine(p.Counts))
			for _, b := range p.Batches {
				fmt.Fprintf(env.Stdout, "  batch %s [%s] %s\n", b.Name, b.Status, countsLine(b.Counts))
			}
			return nil
		})
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
