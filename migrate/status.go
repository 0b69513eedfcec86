package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"ariga.io/atlas/sql/migrate"
)

// StatusResult is the migration state of a database.
type StatusResult struct {
	Current string         // the last fully applied version; empty for none
	Applied int            // number of applied files
	Pending []migrate.File // files not yet applied, in order
	// Dirty is set when a revision was left partially applied or with an
	// error (by a tool that does not run files in transactions).
	Dirty  bool
	Reason string // why the database is dirty
}

// Status reads the migration state of db against dir. It changes nothing.
func Status(ctx context.Context, db *sql.DB, dir migrate.Dir) (*StatusResult, error) {
	if err := Validate(dir); err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	rrw, ok, err := readRevisions(ctx, conn, dir)
	if err != nil {
		return nil, err
	}
	res := &StatusResult{}
	if ok {
		revs, err := rrw.ReadRevisions(ctx)
		if err != nil {
			return nil, fmt.Errorf("migrate: read revisions: %w", err)
		}
		for _, r := range revs {
			switch {
			case r.Applied != r.Total:
				res.Dirty, res.Reason = true, fmt.Sprintf("%s is partially applied (%d of %d statements)", r.Version, r.Applied, r.Total)
			case r.Error != "":
				res.Dirty, res.Reason = true, fmt.Sprintf("%s recorded an error", r.Version)
			default:
				res.Current = r.Version
				res.Applied++
			}
		}
	}
	res.Pending, err = pendingFiles(ctx, conn, dir, rrw, ok)
	if err != nil && !errors.Is(err, migrate.ErrNoPendingFiles) {
		return nil, err
	}
	return res, nil
}
