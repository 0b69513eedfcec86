package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"
)

// RevisionTable is the table that records applied migrations. Its columns
// follow the Atlas CLI's revisions table, so `atlas migrate` pointed at the
// public schema (search_path=public) reads the same history.
const RevisionTable = "atlas_schema_revisions"

const revisionDDL = `CREATE TABLE IF NOT EXISTS public.atlas_schema_revisions (
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
// transaction.
type revisions struct{ db querier }

var _ migrate.RevisionReadWriter = (*revisions)(nil)

func (r *revisions) init(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, revisionDDL); err != nil {
		return fmt.Errorf("migrate: create %s: %w", RevisionTable, err)
	}
	return nil
}

// exists reports whether the revisions table is there, without creating it.
func (r *revisions) exists(ctx context.Context) (bool, error) {
	var ok bool
	err := r.db.QueryRowContext(ctx, `SELECT to_regclass('public.atlas_schema_revisions') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("migrate: look for %s: %w", RevisionTable, err)
	}
	return ok, nil
}

// Ident implements migrate.RevisionReadWriter.
func (r *revisions) Ident() *migrate.TableIdent {
	return &migrate.TableIdent{Name: RevisionTable, Schema: "public"}
}

const revisionColumns = `version, description, type, applied, total, executed_at, execution_time,
	coalesce(error, ''), coalesce(error_stmt, ''), hash, partial_hashes, operator_version`

// ReadRevisions implements migrate.RevisionReadWriter.
func (r *revisions) ReadRevisions(ctx context.Context) ([]*migrate.Revision, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+revisionColumns+` FROM public.atlas_schema_revisions ORDER BY version`)
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
		out = append(out, rev)
	}
	return out, rows.Err()
}

// ReadRevision implements migrate.RevisionReadWriter.
func (r *revisions) ReadRevision(ctx context.Context, version string) (*migrate.Revision, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+revisionColumns+` FROM public.atlas_schema_revisions WHERE version = $1`, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
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
	_, err := r.db.ExecContext(ctx, `INSERT INTO public.atlas_schema_revisions
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
	_, err := r.db.ExecContext(ctx, `DELETE FROM public.atlas_schema_revisions WHERE version = $1`, version)
	return err
}
