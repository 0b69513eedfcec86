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

// openReader opens the database a read command reads: read-only on
// --read-url (or DATABASE_READ_URL) when given, else the database of --url
// (or DATABASE_URL). An explicit flag wins over the environment.
func openReader(ctx context.Context, env Env, flagURL, flagReadURL string) (*db.DB, error) {
	if u := readURL(env, flagURL, flagReadURL); u != "" {
		return db.OpenReplica(ctx, db.Config{URL: u})
	}
	return openDB(ctx, env, flagURL)
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

// newRunCmd is a command on one run: "[--url URL] [--read-url URL] [-o
// FORMAT] ID". It only reads: fn gets the database to read (read-only when
// a read URL is given), the run ID and the output format.
func newRunCmd(env Env, use, short string, fn func(ctx context.Context, d *db.DB, id uuid.UUID, out output) error) *cobra.Command {
	cmd := &cobra.Command{Use: use + " ID", Short: short, Args: runIDArg}
	url := addURLFlag(cmd)
	readURL := addReadURLFlag(cmd)
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := uuid.Parse(args[0])
		if err != nil {
			return usageErrorf("%q is not a run ID (a UUID)", args[0])
		}
		d, err := openReader(cmd.Context(), env, *url, *readURL)
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
			r, err := report.LoadRun(ctx, d, execution.New(d, execution.Options{}), id)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(env.Stdout, r)
			}
			renderRun(env.Stdout, r)
			renderStaleness(env.Stdout, r.Staleness)
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
			fmt.Fprintf(env.Stdout, "run %s [%s] %s\n", p.RunID, p.Status, report.CountsLine(p.Counts))
			for _, b := range p.Batches {
				fmt.Fprintf(env.Stdout, "  batch %s [%s] %s\n", b.Name, b.Status, report.CountsLine(b.Counts))
			}
			renderStaleness(env.Stdout, p.Staleness)
			return nil
		})
}

// renderStaleness says, under counts read from a standby, how fresh they are.
func renderStaleness(w io.Writer, st *db.Staleness) {
	if st != nil && st.Standby {
		fmt.Fprintf(w, "read from a %s\n", st)
	}
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
