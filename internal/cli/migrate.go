package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	amigrate "ariga.io/atlas/sql/migrate"
	_ "github.com/lib/pq" // the postgres driver

	"github.com/runledger/runledger/internal/pgurl"
	"github.com/runledger/runledger/migrate"
)

func openSQL(ctx context.Context, url string) (*sql.DB, error) {
	d, err := sql.Open("postgres", url)
	if err != nil {
		return nil, pgurl.ErrMalformed
	}
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		if _, perr := pgurl.Parse(url); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("connect to %s: %w", pgurl.Describe(url), redactPing(err))
	}
	return d, nil
}

// redactPing drops what a connection error might echo of the URL.
func redactPing(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errors.New(firstLine(err.Error()))
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

func migrateApply(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "migrate apply")
	url := fs.String("url", "", "database URL (default $DATABASE_URL)")
	to := fs.String("to", "", "apply up to and including this version")
	dry := fs.Bool("dry-run", false, "print what would run, change nothing")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	u, err := databaseURL(env, *url)
	if err != nil {
		return err
	}
	return applyTo(ctx, env, u, migrate.ApplyOptions{ToVersion: *to, DryRun: *dry})
}

// applyTo applies the embedded migrations to the database at url, printing
// one line per file.
func applyTo(ctx context.Context, env Env, url string, opts migrate.ApplyOptions) error {
	d, err := openSQL(ctx, url)
	if err != nil {
		return err
	}
	defer d.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return err
	}
	verb := "applied"
	if opts.DryRun {
		verb = "would apply"
	}
	opts.OnFile = func(f migrate.FileResult) {
		fmt.Fprintf(env.Stdout, "%s %s (%d statements, %s)\n", verb, f.Name, f.Statements, f.Duration.Round(time.Millisecond))
	}
	res, err := migrate.Apply(ctx, d, dir, opts)
	if err != nil {
		return err
	}
	if len(res.Files) == 0 {
		fmt.Fprintf(env.Stdout, "no pending migrations (at version %s)\n", orNone(res.From))
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s: version %s -> %s\n", pgurl.Describe(url), orNone(res.From), res.To)
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

func migrateStatus(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "migrate status")
	url := fs.String("url", "", "database URL (default $DATABASE_URL)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	u, err := databaseURL(env, *url)
	if err != nil {
		return err
	}
	d, err := openSQL(ctx, u)
	if err != nil {
		return err
	}
	defer d.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return err
	}
	st, err := migrate.Status(ctx, d, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "database: %s\ncurrent version: %s (%d applied)\npending: %d\n", pgurl.Describe(u), orNone(st.Current), st.Applied, len(st.Pending))
	for _, f := range st.Pending {
		fmt.Fprintf(env.Stdout, "  %s\n", f.Name())
	}
	if st.Dirty {
		fmt.Fprintf(env.Stdout, "dirty: yes (%s)\n", st.Reason)
	} else {
		fmt.Fprintln(env.Stdout, "dirty: no")
	}
	return nil
}

// localDir opens --dir, or migrate/migrations of the enclosing module.
func localDir(path string) (*amigrate.LocalDir, error) {
	if path == "" {
		var err error
		if path, err = migrate.FindDir(); err != nil {
			return nil, err
		}
	}
	return migrate.Local(path)
}

func migrateDiff(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "migrate diff")
	devURL := fs.String("dev-url", "", "server for the temporary dev database (default the local server)")
	dirPath := fs.String("dir", "", "migration directory (default migrate/migrations of this module)")
	check := fs.Bool("check", false, "write nothing; fail when anything would be planned")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	dir, err := localDir(*dirPath)
	if err != nil {
		return err
	}
	if *check {
		if len(pos) > 0 {
			return fmt.Errorf("%w: --check takes no NAME", errUsage)
		}
		if err := migrate.Check(ctx, dir, migrate.DiffOptions{DevURL: *devURL}); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "migrations are in sync with ent/schema")
		return nil
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: diff takes one NAME", errUsage)
	}
	name, err := migrate.Diff(ctx, dir, pos[0], migrate.DiffOptions{DevURL: *devURL})
	if err != nil {
		return err
	}
	if name == "" {
		fmt.Fprintln(env.Stdout, "no changes: ent/schema matches the migration directory")
		return nil
	}
	fmt.Fprintf(env.Stdout, "wrote %s and atlas.sum: review it, then run 'runledger migrate apply'\n", name)
	return nil
}

func migrateNew(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "migrate new")
	dirPath := fs.String("dir", "", "migration directory (default migrate/migrations of this module)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: new takes one NAME", errUsage)
	}
	dir, err := localDir(*dirPath)
	if err != nil {
		return err
	}
	name, err := migrate.New(dir, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s: write the SQL, then run 'runledger migrate hash'\n", name)
	return nil
}

// dirOnly runs fn on the migration directory of --dir (or this module's),
// for the commands that take nothing else.
func dirOnly(env Env, name string, args []string, fn func(*amigrate.LocalDir) (string, error)) error {
	fs := newFlags(env, name)
	dirPath := fs.String("dir", "", "migration directory (default migrate/migrations of this module)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	dir, err := localDir(*dirPath)
	if err != nil {
		return err
	}
	msg, err := fn(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, msg)
	return nil
}

func migrateHash(_ context.Context, env Env, args []string) error {
	return dirOnly(env, "migrate hash", args, func(dir *amigrate.LocalDir) (string, error) {
		return "atlas.sum rewritten", migrate.Hash(dir)
	})
}

func migrateValidate(_ context.Context, env Env, args []string) error {
	return dirOnly(env, "migrate validate", args, func(dir *amigrate.LocalDir) (string, error) {
		return "migration directory is valid", migrate.Validate(dir)
	})
}
