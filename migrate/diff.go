package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"ariga.io/atlas/sql/migrate"
	atlasschema "ariga.io/atlas/sql/schema"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"

	entmigrate "github.com/runledger/runledger/ent/migrate"
)

// ErrDrift is returned by Check when ent/schema and the migration directory
// disagree: a diff would plan changes.
var ErrDrift = errors.New("migrate: the migration directory does not match ent/schema; run 'runledger migrate diff NAME'")

// DiffOptions tune Diff and Check.
type DiffOptions struct {
	// DevURL is a PostgreSQL server on which a temporary, empty dev database
	// is created and dropped. Empty means the local server.
	DevURL string
}

// Diff replays dir on a temporary dev database, compares the result with
// ent/schema and writes the difference as a new file <version>_<name>.sql,
// rehashing atlas.sum. It returns the new file's name, or "" when there is
// nothing to plan.
func Diff(ctx context.Context, dir migrate.Dir, name string, opts DiffOptions) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	before, err := dir.Files()
	if err != nil {
		return "", fmt.Errorf("migrate: read directory: %w", err)
	}
	// An empty directory has no atlas.sum yet; the planner writes it.
	if err := Validate(dir); err != nil && (len(before) > 0 || !errors.Is(err, migrate.ErrChecksumNotFound)) {
		return "", err
	}
	err = withDevDatabase(ctx, opts.DevURL, func(dev *sql.DB) error {
		return plan(ctx, dev, dir, name, true)
	})
	switch {
	case errors.Is(err, migrate.ErrNoPlan):
		return "", nil
	case err != nil:
		return "", err
	}
	after, err := dir.Files()
	if err != nil {
		return "", fmt.Errorf("migrate: read directory: %w", err)
	}
	seen := map[string]bool{}
	for _, f := range before {
		seen[f.Name()] = true
	}
	for _, f := range after {
		if !seen[f.Name()] {
			return f.Name(), nil
		}
	}
	return "", nil
}

// Check fails with ErrDrift when Diff would plan anything. It writes nothing.
func Check(ctx context.Context, dir migrate.Dir, opts DiffOptions) error {
	if err := Validate(dir); err != nil {
		return err
	}
	files, err := dir.Files()
	if err != nil {
		return fmt.Errorf("migrate: read directory: %w", err)
	}
	mem := &migrate.MemDir{}
	if err := mem.CopyFiles(files); err != nil {
		return fmt.Errorf("migrate: copy directory: %w", err)
	}
	err = withDevDatabase(ctx, opts.DevURL, func(dev *sql.DB) error {
		return plan(ctx, dev, mem, "check", true)
	})
	switch {
	case errors.Is(err, migrate.ErrNoPlan):
		return nil
	case err != nil:
		return err
	}
	var planned []string
	if after, err := mem.Files(); err == nil {
		for _, f := range after[len(files):] {
			planned = append(planned, string(f.Bytes()))
		}
	}
	return fmt.Errorf("%w:\n%s", ErrDrift, strings.Join(planned, "\n"))
}

func plan(ctx context.Context, dev *sql.DB, dir migrate.Dir, name string, errNoPlan bool) error {
	m, err := schema.NewMigrate(entsql.OpenDB(dialect.Postgres, dev),
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(dialect.Postgres),
		schema.WithFormatter(migrate.DefaultFormatter),
		schema.WithDropIndex(true),
		schema.WithDropColumn(true),
		schema.WithErrNoPlan(errNoPlan),
		schema.WithDiffHook(recreateFunctions(ctx, dev, dir)),
	)
	if err != nil {
		return fmt.Errorf("migrate: plan: %w", err)
	}
	if err := m.NamedDiff(ctx, name, entmigrate.Tables...); err != nil {
		if errors.Is(err, migrate.ErrNoPlan) {
			return err
		}
		return fmt.Errorf("migrate: plan: %w", err)
	}
	return nil
}

// createFunction matches a statement that creates a function.
var createFunction = regexp.MustCompile(`(?is)^CREATE\s+(OR\s+REPLACE\s+)?FUNCTION\s`)

// recreateFunctions runs the directory's CREATE FUNCTION statements on the
// dev database again right before the diff compares the replayed schema with
// ent/schema.
//
// Replay mode normalizes ent/schema by creating its tables on the dev
// database and then restoring the database to what it inspected, which drops
// and recreates the public schema: the functions of hand-written files go
// with it, since Atlas (OSS) does not inspect functions. The comparison of a
// column default that is an expression runs `SELECT <old> = <new>` on the dev
// database, so a default that calls one of those functions (id DEFAULT
// runledger_uuidv7()) would fail with "function does not exist" (42883).
// Function bodies are not checked here (the tables they name are gone by then).
func recreateFunctions(ctx context.Context, dev *sql.DB, dir migrate.Dir) schema.DiffHook {
	return func(next schema.Differ) schema.Differ {
		return schema.DiffFunc(func(current, desired *atlasschema.Schema) ([]atlasschema.Change, error) {
			if err := execFunctions(ctx, dev, dir); err != nil {
				return nil, err
			}
			return next.Diff(current, desired)
		})
	}
}

func execFunctions(ctx context.Context, dev *sql.DB, dir migrate.Dir) error {
	files, err := dir.Files()
	if err != nil {
		return fmt.Errorf("migrate: read directory: %w", err)
	}
	var stmts []string
	for _, f := range files {
		decls, err := migrate.Stmts(string(f.Bytes()))
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", f.Name(), err)
		}
		for _, d := range decls {
			if createFunction.MatchString(strings.TrimSpace(d.Text)) {
				stmts = append(stmts, d.Text)
			}
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	tx, err := dev.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: recreate functions on the dev database: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, s := range append([]string{
		"SET LOCAL check_function_bodies = off",
		"SET LOCAL search_path = public",
	}, stmts...) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: recreate functions on the dev database: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: recreate functions on the dev database: %w", err)
	}
	return nil
}

// New writes an empty migration file <version>_<name>.sql for hand-written
// SQL (triggers, functions) and rehashes atlas.sum. It returns the file name.
func New(dir migrate.Dir, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	if err := Validate(dir); err != nil && !errors.Is(err, migrate.ErrChecksumNotFound) {
		return "", err
	}
	file := time.Now().UTC().Format("20060102150405") + "_" + name + ".sql"
	body := "-- " + name + ": hand-written SQL. Write functions with CREATE OR REPLACE so that a\n" +
		"-- replay on a dev database never collides. Run 'runledger migrate hash' after editing.\n"
	if err := dir.WriteFile(file, []byte(body)); err != nil {
		return "", fmt.Errorf("migrate: write %s: %w", file, err)
	}
	return file, Hash(dir)
}

func validName(name string) error {
	if name == "" {
		return errors.New("migrate: a migration needs a NAME (letters, digits, underscores)")
	}
	for _, r := range name {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return fmt.Errorf("migrate: invalid migration name %q: use letters, digits and underscores", name)
		}
	}
	return nil
}

// FindDir returns the path of migrate/migrations in the module that contains
// the working directory, for the commands that write files.
func FindDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, DirPath)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("migrate: %s not found in module %s", DirPath, d)
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("migrate: no go.mod above %s: run from the runledger repository or pass --dir", wd)
		}
	}
}
