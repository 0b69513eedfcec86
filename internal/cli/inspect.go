package cli

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// openDB opens the database named by --url or DATABASE_URL.
func openDB(ctx context.Context, env Env, flagURL string) (*db.DB, error) {
	u, err := databaseURL(env, flagURL)
	if err != nil {
		return nil, err
	}
	return db.Open(ctx, db.Config{URL: u})
}

func parseRunID(pos []string, what string) (uuid.UUID, error) {
	if len(pos) != 1 {
		return uuid.Nil, fmt.Errorf("%w: %s takes one run ID", errUsage, what)
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: %q is not a run ID (a UUID)", errUsage, pos[0])
	}
	return id, nil
}

// withRun parses "[--url URL] ID", opens the database and calls fn.
func withRun(ctx context.Context, env Env, name string, args []string, fn func(*db.DB, uuid.UUID) error) error {
	fs := newFlags(env, name)
	url := fs.String("url", "", "database URL (default $DATABASE_URL)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := parseRunID(pos, name)
	if err != nil {
		return err
	}
	d, err := openDB(ctx, env, *url)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, id)
}

func inspectRun(ctx context.Context, env Env, args []string) error {
	return withRun(ctx, env, "inspect run", args, func(d *db.DB, id uuid.UUID) error {
		return printRunTree(ctx, env.Stdout, d.Client, execution.New(d, execution.Options{}), id)
	})
}

func progress(ctx context.Context, env Env, args []string) error {
	return withRun(ctx, env, "progress", args, func(d *db.DB, id uuid.UUID) error {
		p, err := execution.New(d, execution.Options{}).Progress(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "run %s [%s] %s\n", p.RunID, p.Status, countsLine(p.Counts))
		for _, b := range p.Batches {
			fmt.Fprintf(env.Stdout, "  batch %s [%s] %s\n", b.Name, b.Status, countsLine(b.Counts))
		}
		return nil
	})
}
