package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"
	"github.com/lib/pq"
)

// RevisionSchema and RevisionTable name the table that records runledger's
// applied migrations: runledger.atlas_schema_revisions. Its columns follow
// the Atlas CLI's revisions table, so `atlas migrate ... --revisions-schema
// runledger` reads and writes the same history. It lives in a schema of its
// own so that an application's own Atlas (or ent versioned) migrations, which
// record theirs in public.atlas_schema_revisions by default, and runledger's
// apply to one database in any order without seeing each other's versions.
const (
	RevisionSchema = "runledger"
	RevisionTable  = "atlas_schema_revisions"
)

// legacySchema is where runledger recorded revisions before it had a schema
// of its own; Apply moves its rows (see moveLegacy).
const legacySchema = "public"

// revisionDDL creates the revisions table in schema %[1]s.
const revisionDDL = `CREATE TABLE IF NOT EXISTS %[1]s.atlas_schema_revisions (
	version character varying NOT NULL PRIMARY KEY,
	description character varying NOT NULL,
	type bigint NOT NULL DEFAULT 2,
	applied bigint NOT NULL DEFAULT 0,
	total bigint NOT NULL DEFAULT 0,
	executed_at timestamptz NOT NULL,
	execution_time bigint NOT NULL,
	error text NULL,
	error_stmt text NULL,
	hash character varying NOT NULL,
	partial_hashes jsonb NULL,
	operator_version character varying NOT NULL
)`

// querier is what *sql.Conn and *sql.Tx have in common.
type querier interface {
	schema.ExecQuerier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// revisions implements migrate.RevisionReadWriter over a connection or a
// transaction, on the atlas_schema_revisions table of a schema (runledger's
// own unless set).
type revisions struct {
	db     querier
	schema string
	// only, when set, limits reads to these versions: a legacy table in
	// public may hold an application's revisions beside runledger's.
	only map[string]bool
}

var _ migrate.RevisionReadWriter = (*revisions)(nil)

// table is the revisions table's qualified, quoted name.
func (r *revisions) table() string {
	return pq.QuoteIdentifier(r.schemaName()) + "." + RevisionTable
}

func (r *revisions) schemaName() string {
	if r.schema == "" {
		return RevisionSchema
	}
	return r.schema
}

// init creates the schema and the revisions table when missing.
func (r *revisions) init(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pq.QuoteIdentifier(r.schemaName())); err != nil {
		return fmt.Errorf("migrate: create schema %s: %w", r.schemaName(), err)
	}
	if _, err := r.db.ExecContext(ctx, fmt.Sprintf(revisionDDL, pq.QuoteIdentifier(r.schemaName()))); err != nil {
		return fmt.Errorf("migrate: create %s.%s: %w", r.schemaName(), RevisionTable, err)
	}
	return nil
}

// exists reports whether the revisions table is there, without creating it.
func (r *revisions) exists(ctx context.Context) (bool, error) {
	var ok bool
	err := r.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, r.table()).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("migrate: look for %s.%s: %w", r.schemaName(), RevisionTable, err)
	}
	return ok, nil
}

// Ident implements migrate.RevisionReadWriter.
func (r *revisions) Ident() *migrate.TableIdent {
	return &migrate.TableIdent{Name: RevisionTable, Schema: r.schemaName()}
}

const revisionFields = `version, description, type, applied, total, executed_at, execution_time,
	error, error_stmt, hash, partial_hashes, operator_version`

const revisionColumns = `version, description, type, applied, total, executed_at, execution_time,
	coalesce(error, ''), coalesce(error_stmt, ''), hash, partial_hashes, operator_version`

// ReadRevisions implements migrate.RevisionReadWriter.
func (r *revisions) ReadRevisions(ctx context.Context) ([]*migrate.Revision, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+revisionColumns+` FROM `+r.table()+` ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*migrate.Revision
	for rows.Next() {
		rev, err := scanRevision(rows)
		if err != nil {
			return nil, err
		}
		if r.only == nil || r.only[rev.Version] {
			out = append(out, rev)
		}
	}
	return out, rows.Err()
}

// ReadRevision implements migrate.RevisionReadWriter.
func (r *revisions) ReadRevision(ctx context.Context, version string) (*migrate.Revision, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+revisionColumns+` FROM `+r.table()+` WHERE version = $1`, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() || (r.only != nil && !r.only[version]) {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, migrate.ErrRevisionNotExist
	}
	return scanRevision(rows)
}

func scanRevision(rows *sql.Rows) (*migrate.Revision, error) {
	var (
		rev      migrate.Revision
		execTime int64
		partial  []byte
	)
	if err := rows.Scan(&rev.Version, &rev.Description, &rev.Type, &rev.Applied, &rev.Total,
		&rev.ExecutedAt, &execTime, &rev.Error, &rev.ErrorStmt, &rev.Hash, &partial, &rev.OperatorVersion); err != nil {
		return nil, err
	}
	rev.ExecutionTime = time.Duration(execTime)
	if len(partial) > 0 {
		if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
			return nil, fmt.Errorf("migrate: revision %s: partial hashes: %w", rev.Version, err)
		}
	}
	return &rev, nil
}

// WriteRevision implements migrate.RevisionReadWriter.
func (r *revisions) WriteRevision(ctx context.Context, rev *migrate.Revision) error {
	var partial any
	if len(rev.PartialHashes) > 0 {
		b, err := json.Marshal(rev.PartialHashes)
		if err != nil {
			return err
		}
		partial = b
	}
	_, err := r.db.ExecContext(ctx, `INSERT INTO `+r.table()+`
		(version, description, type, applied, total, executed_at, execution_time, error, error_stmt, hash, partial_hashes, operator_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), nullif($9, ''), $10, $11, $12)
		ON CONFLICT (version) DO UPDATE SET
			description = excluded.description, type = excluded.type, applied = excluded.applied,
			total = excluded.total, executed_at = excluded.executed_at, execution_time = excluded.execution_time,
			error = excluded.error, error_stmt = excluded.error_stmt, hash = excluded.hash,
			partial_hashes = excluded.partial_hashes, operator_version = excluded.operator_version`,
		rev.Version, rev.Description, rev.Type, rev.Applied, rev.Total, rev.ExecutedAt, int64(rev.ExecutionTime),
		rev.Error, rev.ErrorStmt, rev.Hash, partial, rev.OperatorVersion)
	return err
}

// DeleteRevision implements migrate.RevisionReadWriter.
func (r *revisions) DeleteRevision(ctx context.Context, version string) error {
	_, err := r.db.ExecContext(ctx, `DELETE FROM `+r.table()+` WHERE version = $1`, version)
	return err
}

// versionsOf returns the versions of dir's files.
func versionsOf(dir migrate.Dir) (map[string]bool, error) {
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migrate: read directory: %w", err)
	}
	out := make(map[string]bool, len(files))
	for _, f := range files {
		out[f.Version()] = true
	}
	return out, nil
}

// readRevisions returns the revisions to read runledger's history from,
// changing nothing: runledger's own table, else (a database last migrated
// before runledger had its own schema) the rows of dir's versions in
// public.atlas_schema_revisions. ok is false when neither exists.
func readRevisions(ctx context.Context, db querier, dir migrate.Dir) (rrw *revisions, ok bool, err error) {
	own := &revisions{db: db}
	if ok, err := own.exists(ctx); err != nil || ok {
		return own, ok, err
	}
	legacy := &revisions{db: db, schema: legacySchema}
	if ok, err := legacy.exists(ctx); err != nil || !ok {
		return own, false, err
	}
	if legacy.only, err = versionsOf(dir); err != nil {
		return nil, false, err
	}
	return legacy, true, nil
}

// moveLegacy moves runledger's rows (those of dir's versions) from
// public.atlas_schema_revisions into runledger's own table, in one
// transaction, and drops the public table when nothing else is left in it.
// It runs under Apply's advisory lock, and only while runledger's table is
// empty, so it happens once. It returns the number of rows moved.
func moveLegacy(ctx context.Context, conn *sql.Conn, dir migrate.Dir) (moved int64, err error) {
	legacy := &revisions{db: conn, schema: legacySchema}
	if ok, err := legacy.exists(ctx); err != nil || !ok {
		return 0, err
	}
	own := &revisions{db: conn}
	var empty bool
	if err := conn.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM `+own.table()+`)`).Scan(&empty); err != nil {
		return 0, fmt.Errorf("migrate: read %s.%s: %w", RevisionSchema, RevisionTable, err)
	}
	if !empty {
		return 0, nil
	}
	versions, err := versionsOf(dir)
	if err != nil {
		return 0, err
	}
	list := make([]string, 0, len(versions))
	for v := range versions {
		list = append(list, v)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate: move revisions: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `
		WITH gone AS (
			DELETE FROM `+legacy.table()+` WHERE version = ANY($1)
			RETURNING `+revisionFields+`)
		INSERT INTO `+own.table()+` (`+revisionFields+`) SELECT `+revisionFields+` FROM gone`, pq.Array(list))
	if err != nil {
		return 0, fmt.Errorf("migrate: move revisions from %s.%s: %w", legacySchema, RevisionTable, err)
	}
	if moved, err = res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("migrate: move revisions: %w", err)
	}
	var left bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+legacy.table()+`)`).Scan(&left); err != nil {
		return 0, fmt.Errorf("migrate: move revisions: %w", err)
	}
	if !left && moved > 0 {
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+legacy.table()); err != nil {
			return 0, fmt.Errorf("migrate: move revisions: drop %s.%s: %w", legacySchema, RevisionTable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate: move revisions: commit: %w", err)
	}
	return moved, nil
}
