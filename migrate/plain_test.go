package migrate_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

// catalogFingerprint describes everything the migrations create in the
// public schema: columns, constraints, indexes, triggers and functions.
const catalogFingerprint = `
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
	|| ' ' || is_nullable || ' ' || coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'atlas_schema_revisions'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'atlas_schema_revisions'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'atlas_schema_revisions'
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'function ' || p.proname || ' ' || md5(pg_get_functiondef(p.oid))
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
ORDER BY 1`

func fingerprint(t *testing.T, d *sql.DB) string {
	t.Helper()
	rows, err := d.Query(catalogFingerprint)
	require.NoError(t, err)
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		require.NoError(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "\n")
}

// TestPlainSQLMatchesExecutor: the migration files alone, run as plain SQL
// in file order (as psql -f would), build exactly the database that
// migrate.Apply builds.
func TestPlainSQLMatchesExecutor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	viaApply := openSQL(t, dbtest.EmptyURL(t))
	_, err := migrate.Apply(ctx, viaApply, embedded(t), migrate.ApplyOptions{})
	require.NoError(t, err)

	plain := openSQL(t, dbtest.EmptyURL(t))
	files, err := embedded(t).Files()
	require.NoError(t, err)
	for _, f := range files {
		_, err := plain.ExecContext(ctx, string(f.Bytes())) // one simple-protocol query per file
		require.NoError(t, err, f.Name())
	}
	want := fingerprint(t, viaApply)
	require.Contains(t, want, "index CREATE UNIQUE INDEX ix_automation_name_active ON public.automation USING btree (name) WHERE (is_active = true)")
	require.Contains(t, want, "trigger CREATE TRIGGER item_execution_history_update AFTER UPDATE")
	require.Equal(t, want, fingerprint(t, plain))
}
