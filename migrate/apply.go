package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"

	"github.com/runledger/runledger/internal/layout"
)

// lockKey is the advisory lock that serializes migrations on one database.
// Two deploys that apply at once: the second waits, then finds nothing to do.
const lockKey int64 = 0x72756e6c6564 // "runled"

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// ToVersion stops after the file with this version (inclusive). Empty applies all.
	ToVersion string
	// DryRun reports what would run and changes nothing.
	DryRun bool
	// OnFile, if set, is called after each file is applied (or, in a dry run, planned).
	OnFile func(FileResult)
	// Layout, when LayoutPartitioned, converts the database to the
	// partitioned layout after the files are applied (see Partition); a
	// database already partitioned stays as it is. Empty keeps the layout
	// the database has. Ignored in a dry run.
	Layout string
}

// FileResult describes one applied (or planned) migration file.
type FileResult struct {
	Name       string
	Version    string
	Statements int
	Duration   time.Duration
}

// ApplyResult is what Apply did.
type ApplyResult struct {
	From, To string       // versions before and after; empty for none
	Files    []FileResult // files applied (or planned, in a dry run), in order
}

// StmtError reports a migration statement that failed. Its file was rolled
// back whole: the database is as it was before the file.
type StmtError struct {
	File string // the file name
	Stmt string // the failing statement
	Pos  int    // the statement's position in the file, from 1
	Err  error  // the database's error
}

// Error implements error.
func (e *StmtError) Error() string {
	return fmt.Sprintf("migrate: %s: statement %d failed (file rolled back): %v\n\t%s", e.File, e.Pos, e.Err, e.Stmt)
}

// Unwrap returns the database error.
func (e *StmtError) Unwrap() error { return e.Err }

// Apply runs the pending files of dir on db in version order, each in its own
// transaction, holding an advisory lock for the whole run. With no pending
// file it returns a result with no Files and a nil error.
func Apply(ctx context.Context, db *sql.DB, dir migrate.Dir, opts ApplyOptions) (*ApplyResult, error) {
	if opts.Layout != "" && opts.Layout != LayoutPartitioned {
		return nil, fmt.Errorf("migrate: unknown layout %q: the only one to ask for is %q (the default needs none)", opts.Layout, LayoutPartitioned)
	}
	conn, unlock, err := lockedConn(ctx, db)
	if err != nil {
		return nil, err
	}
	defer unlock()

	var (
		rrw    *revisions
		exists = true
	)
	if opts.DryRun {
		if rrw, exists, err = readRevisions(ctx, conn, dir); err != nil {
			return nil, err
		}
	} else {
		rrw = &revisions{db: conn}
		if err := rrw.init(ctx); err != nil {
			return nil, err
		}
		if _, err := moveLegacy(ctx, conn, dir); err != nil {
			return nil, err
		}
	}
	res := &ApplyResult{}
	pending, err := pendingFiles(ctx, conn, dir, rrw, exists)
	if err != nil {
		return nil, err
	}
	if exists {
		if res.From, err = currentVersion(ctx, rrw); err != nil {
			return nil, err
		}
	}
	res.To = res.From
	if opts.ToVersion != "" {
		idx := -1
		for i, f := range pending {
			if f.Version() == opts.ToVersion {
				idx = i
			}
		}
		if idx == -1 {
			return nil, fmt.Errorf("migrate: version %q is not pending (pending: %d files)", opts.ToVersion, len(pending))
		}
		pending = pending[:idx+1]
	}
	for _, f := range pending {
		fr := FileResult{Name: f.Name(), Version: f.Version()}
		stmts, err := f.StmtDecls()
		if err != nil {
			return res, fmt.Errorf("migrate: %s: read statements: %w", f.Name(), err)
		}
		fr.Statements = len(stmts)
		if !opts.DryRun {
			start := time.Now()
			if err := applyFile(ctx, conn, dir, f); err != nil {
				return res, err
			}
			fr.Duration = time.Since(start)
		}
		res.Files = append(res.Files, fr)
		res.To = f.Version()
		if opts.OnFile != nil {
			opts.OnFile(fr)
		}
	}
	if opts.Layout == LayoutPartitioned && !opts.DryRun {
		if _, err := partitionOn(ctx, conn, PartitionOptions{}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// lockedConn returns a connection holding the migration advisory lock and
// the function that releases both.
func lockedConn(ctx context.Context, db *sql.DB) (*sql.Conn, func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: connect: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	return conn, func() {
		// A fresh context: the caller's may be done, and the lock must go.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, lockKey)
		conn.Close()
	}, nil
}

// pendingFiles lists the files not yet applied; exists tells whether rrw's
// table exists (all files are pending when it does not). The database need
// not be clean: runledger's tables live beside the application's.
func pendingFiles(ctx context.Context, conn *sql.Conn, dir migrate.Dir, rrw *revisions, exists bool) ([]migrate.File, error) {
	if !exists {
		if err := Validate(dir); err != nil {
			return nil, err
		}
		files, err := dir.Files()
		if err != nil {
			return nil, fmt.Errorf("migrate: read directory: %w", err)
		}
		return files, nil
	}
	if err := checkHistory(ctx, dir, rrw); err != nil {
		return nil, err
	}
	drv, err := postgres.Open(conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: open driver: %w", err)
	}
	ex, err := migrate.NewExecutor(drv, dir, rrw, migrate.WithAllowDirty(true))
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	files, err := ex.Pending(ctx)
	switch {
	case errors.Is(err, migrate.ErrNoPendingFiles):
		return nil, nil
	case errors.Is(err, migrate.ErrChecksumMismatch), errors.Is(err, migrate.ErrChecksumNotFound):
		return nil, Validate(dir)
	case err != nil:
		return nil, fmt.Errorf("migrate: list pending files: %w", err)
	}
	return files, nil
}

// HistoryChangedError reports a migration file that was edited after it was
// applied: its checksum differs from the one recorded when it ran.
type HistoryChangedError struct {
	File string
}

// Error implements error.
func (e *HistoryChangedError) Error() string {
	return fmt.Sprintf("migrate: %s was edited after it was applied (its hash differs from the recorded one): revert the edit and add a new migration instead", e.File)
}

// checkHistory refuses a directory in which an applied file has changed.
func checkHistory(ctx context.Context, dir migrate.Dir, rrw *revisions) error {
	if err := Validate(dir); err != nil {
		return err
	}
	ok, err := rrw.exists(ctx)
	if err != nil || !ok {
		return err
	}
	revs, err := rrw.ReadRevisions(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read revisions: %w", err)
	}
	sum, err := dir.Checksum()
	if err != nil {
		return fmt.Errorf("migrate: compute checksum: %w", err)
	}
	files, err := dir.Files()
	if err != nil {
		return fmt.Errorf("migrate: read directory: %w", err)
	}
	byVersion := map[string]migrate.File{}
	for _, f := range files {
		byVersion[f.Version()] = f
	}
	for _, r := range revs {
		f, ok := byVersion[r.Version]
		if !ok || r.Type == migrate.RevisionTypeBaseline || r.Hash == "" {
			continue
		}
		if h, err := sum.SumByName(f.Name()); err == nil && h != r.Hash {
			return &HistoryChangedError{File: f.Name()}
		}
	}
	return nil
}

func currentVersion(ctx context.Context, rrw *revisions) (string, error) {
	revs, err := rrw.ReadRevisions(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate: read revisions: %w", err)
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Applied == revs[i].Total && revs[i].Error == "" {
			return revs[i].Version, nil
		}
	}
	return "", nil
}

// applyFile runs one file and its revision record in one transaction.
func applyFile(ctx context.Context, conn *sql.Conn, dir migrate.Dir, f migrate.File) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %s: begin: %w", f.Name(), err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	drv, err := postgres.Open(tx)
	if err != nil {
		return fmt.Errorf("migrate: %s: open driver: %w", f.Name(), err)
	}
	ex, err := migrate.NewExecutor(drv, dir, &revisions{db: tx}, migrate.WithAllowDirty(true))
	if err != nil {
		return fmt.Errorf("migrate: %s: %w", f.Name(), err)
	}
	if err := ex.Execute(ctx, f); err != nil {
		var se *migrate.StmtExecError
		var hc migrate.HistoryChangedError
		switch {
		case errors.As(err, &se):
			return &StmtError{File: f.Name(), Stmt: se.Stmt.Text, Pos: stmtPos(f, se.Stmt.Text), Err: se.Err}
		case errors.As(err, &hc):
			return fmt.Errorf("migrate: %s was edited after it was applied (statement %d changed): %w", hc.File, hc.Stmt, err)
		default:
			return fmt.Errorf("migrate: %s: %w", f.Name(), err)
		}
	}
	// On the partitioned layout, the partitions' copies of the parents'
	// statement triggers follow what the file did to the parents.
	if kind, err := layout.Current(ctx, tx); err == nil && kind == layout.Partitioned {
		if err := layout.Sync(ctx, tx); err != nil {
			return fmt.Errorf("migrate: %s: %w", f.Name(), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %s: commit: %w", f.Name(), err)
	}
	return nil
}

func stmtPos(f migrate.File, text string) int {
	stmts, err := f.Stmts()
	if err != nil {
		return 0
	}
	for i, s := range stmts {
		if s == text {
			return i + 1
		}
	}
	return 0
}
