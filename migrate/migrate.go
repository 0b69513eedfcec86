// Package migrate applies and plans runledger's versioned migrations with the
// ariga.io/atlas Go library, on the same directory format the Atlas CLI uses
// (migrate/migrations with its atlas.sum), so a team with the atlas CLI can use
// either.
//
//   - Apply runs pending files in order, one transaction per file, under an
//     advisory lock, and records each in runledger.atlas_schema_revisions
//     (its own schema, apart from an application's own Atlas revisions).
//   - Status tells the current version, the pending files and whether the
//     database is dirty.
//   - Diff plans the change from ent/schema against a temporary dev database
//     and writes it as a new file; Check fails when a diff would plan anything.
//   - New, Hash and Validate create a hand-written file, rewrite atlas.sum and
//     check the directory against it.
//   - Lint replays the files on a dev database and runs Atlas's analyzers
//     (destructive, data-dependent, dropped-constraint and incompatible
//     changes) on them; a reviewed finding is let through with Atlas's
//     "-- atlas:nolint CODE" directive (or the older "-- lint:ignore CODE
//     reason").
//
// The migration files are embedded: Embedded returns them as an atlas Dir.
package migrate

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"ariga.io/atlas/sql/migrate"
)

//go:embed migrations
var embedded embed.FS

// DirPath is the migration directory relative to the repository root.
const DirPath = "migrate/migrations"

// Embedded returns the migration directory compiled into the binary.
func Embedded() (migrate.Dir, error) {
	return fromFS(embedded, "migrations")
}

// fromFS copies the files of dir in fsys into an in-memory atlas directory.
func fromFS(fsys fs.FS, dir string) (migrate.Dir, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: read embedded migrations: %w", err)
	}
	md := &migrate.MemDir{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", e.Name(), err)
		}
		if err := md.WriteFile(e.Name(), b); err != nil {
			return nil, fmt.Errorf("migrate: load %s: %w", e.Name(), err)
		}
	}
	return md, nil
}

// Local opens the migration directory at path on disk, for the commands that
// write (diff, new, hash) and for working on files not yet compiled in.
func Local(path string) (*migrate.LocalDir, error) {
	d, err := migrate.NewLocalDir(path)
	if err != nil {
		return nil, fmt.Errorf("migrate: open directory %s: %w", path, err)
	}
	return d, nil
}

// Validate checks dir against its atlas.sum. A file that differs is named in
// the error, which matches migrate.ErrChecksumMismatch with errors.Is.
func Validate(dir migrate.Dir) error {
	err := migrate.Validate(dir)
	var ce *migrate.ChecksumError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return fmt.Errorf("migrate: atlas.sum does not match the directory (file %q, line %d): run 'runledger migrate hash' only if the change is intended: %w", ce.File, ce.Line, err)
	case errors.Is(err, migrate.ErrChecksumNotFound):
		return fmt.Errorf("migrate: atlas.sum is missing: %w", err)
	default:
		return fmt.Errorf("migrate: validate directory: %w", err)
	}
}

// Hash rewrites atlas.sum for the files in dir.
func Hash(dir migrate.Dir) error {
	sum, err := dir.Checksum()
	if err != nil {
		return fmt.Errorf("migrate: compute checksum: %w", err)
	}
	if err := migrate.WriteSumFile(dir, sum); err != nil {
		return fmt.Errorf("migrate: write atlas.sum: %w", err)
	}
	return nil
}
