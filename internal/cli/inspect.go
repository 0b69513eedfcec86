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

func inspectRun(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "inspect run")
	url := fs.String("url", "", "database URL (default $DATABASE_URL)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := parseRunID(pos, "inspect run")
	if err != nil {
		return err
	}
	d, err := openDB(ctx, env, *url)
	if err != nil {
		return err
	}
	defer d.Close()
	return printRunTree(ctx, env.Stdout, d.Client, execution.New(d, execution.Options{}), id)
}

func progress(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "progress")
	url := fs.String("url", "", "database URL (default $DATABASE_URL)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := parseRunID(pos, "progress")
	if err != nil {
		return err
	}
	d, err := openDB(ctx, env, *url)
	if err != nil {
		return err
	}
	defer d.Close()
	p, err := execution.New(d, execution.Options{}).Progress(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "run %s [%s] %s\n", p.RunID, p.Status, countsLine(p.Counts))
	for _, b := range p.Batches {
		fmt.Fprintf(env.Stdout, "  batch %s [%s] %s\n", b.Name, b.Status, countsLine(b.Counts))
	}
	return nil
}
