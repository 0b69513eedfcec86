package migrate_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	amigrate "ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

// appRevisions is an application's own revisions table where the Atlas CLI
// keeps it by default for a schema-bound URL: public.atlas_schema_revisions.
// It is written for the test, as an app (or the Atlas CLI) would have it.
type appRevisions struct {
	db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}
}

const appRevisionsDDL = `CREATE TABLE IF NOT EXISTS public.atlas_schema_revisions (
	version character varying NOT NULL PRIMARY KEY, description character varying NOT NULL,
	type bigint NOT NULL DEFAULT 2, applied bigint NOT NULL DEFAULT 0, total bigint NOT NULL DEFAULT 0,
	executed_at timestamptz NOT NULL, execution_time bigint NOT NULL, error text NULL, error_stmt text NULL,
	hash character varying NOT NULL, partial_hashes jsonb NULL, operator_version character varying NOT NULL)`

func (r appRevisions) Ident() *amigrate.TableIdent {
	return &amigrate.TableIdent{Name: "atlas_schema_revisions", Schema: "public"}
}

func (r appRevisions) ReadRevisions(ctx context.Context) ([]*amigrate.Revision, error) {
	if _, err := r.db.ExecContext(ctx, appRevisionsDDL); err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT version, description, type, applied, total, executed_at,
		coalesce(error, ''), hash, partial_hashes FROM public.atlas_schema_revisions ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*amigrate.Revision
	for rows.Next() {
		var (
			rev     amigrate.Revision
			partial []byte
		)
		if err := rows.Scan(&rev.Version, &rev.Description, &rev.Type, &rev.Applied, &rev.Total, &rev.ExecutedAt, &rev.Error, &rev.Hash, &partial); err != nil {
			return nil, err
		}
		if len(partial) > 0 {
			if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
				return nil, err
			}
		}
		out = append(out, &rev)
	}
	return out, rows.Err()
}

func (r appRevisions) ReadRevision(ctx context.Context, v string) (*amigrate.Revision, error) {
	revs, err := r.ReadRevisions(ctx)
	if err != nil {
		return nil, err
	}
	for _, rev := range revs {
		if rev.Version == v {
			return rev, nil
		}
	}
	return nil, amigrate.ErrRevisionNotExist
}

func (r appRevisions) WriteRevision(ctx context.Context, rev *amigrate.Revision) error {
	partial, err := json.Marshal(rev.PartialHashes)
	if err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, `INSERT INTO public.atlas_schema_revisions
		(version, description, type, applied, total, executed_at, execution_time, error, error_stmt, hash, partial_hashes, operator_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), nullif($9, ''), $10, $11, $12)
		ON CONFLICT (version) DO UPDATE SET applied = excluded.applied, total = excluded.total,
			error = excluded.error, error_stmt = excluded.error_stmt, hash = excluded.hash, partial_hashes = excluded.partial_hashes`,
		rev.Version, rev.Description, rev.Type, rev.Applied, rev.Total, rev.ExecutedAt, int64(rev.ExecutionTime),
		rev.Error, rev.ErrorStmt, rev.Hash, partial, rev.OperatorVersion)
	return err
}

func (r appRevisions) DeleteRevision(ctx context.Context, v string) error {
	_, err := r.db.ExecContext(ctx, `DELETE FROM public.atlas_schema_revisions WHERE version = $1`, v)
	return err
}

// appDir is an application's own migration directory: one file older than
// every runledger migration and, when later is set, one newer.
func appDir(t *testing.T, later bool) *amigrate.MemDir {
	t.Helper()
	dir := &amigrate.MemDir{}
	require.NoError(t, dir.WriteFile("20200101000000_app_users.sql", []byte("CREATE TABLE app_user (id bigint PRIMARY KEY, name text NOT NULL);\n")))
	if later {
		require.NoError(t, dir.WriteFile("29990101000000_app_orders.sql", []byte("CREATE TABLE app_order (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES app_user (id));\n")))
	}
	require.NoError(t, migrate.Hash(dir))
	return dir
}

// applyApp applies the app's directory with the atlas library's executor,
// on a connection as the app has it. allowDirty is what the app needs on its
// first apply when runledger's tables are already in public.
func applyApp(ctx context.Context, t *testing.T, d *sql.DB, dir amigrate.Dir, allowDirty bool) {
	t.Helper()
	drv, err := postgres.Open(d)
	require.NoError(t, err)
	ex, err := amigrate.NewExecutor(drv, dir, appRevisions{db: d}, amigrate.WithAllowDirty(allowDirty))
	require.NoError(t, err)
	err = ex.ExecuteN(ctx, 0)
	if errors.Is(err, amigrate.ErrNoPendingFiles) {
		err = nil
	}
	require.NoError(t, err)
}

// appPending is what the app's executor still has to do.
func appPending(ctx context.Context, t *testing.T, d *sql.DB, dir amigrate.Dir) []amigrate.File {
	t.Helper()
	drv, err := postgres.Open(d)
	require.NoError(t, err)
	ex, err := amigrate.NewExecutor(drv, dir, appRevisions{db: d})
	require.NoError(t, err)
	files, err := ex.Pending(ctx)
	if errors.Is(err, amigrate.ErrNoPendingFiles) {
		return nil
	}
	require.NoError(t, err)
	return files
}

func versions(t *testing.T, d *sql.DB, table string) []string {
	t.Helper()
	rows, err := d.Query(`SELECT version FROM ` + table + ` ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func fileVersions(t *testing.T, dir amigrate.Dir) []string {
	t.Helper()
	files, err := dir.Files()
	require.NoError(t, err)
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, f.Version())
	}
	return out
}

func requireRunledgerClean(ctx context.Context, t *testing.T, d *sql.DB) {
	t.Helper()
	st, err := migrate.Status(ctx, d, embedded(t))
	require.NoError(t, err)
	require.False(t, st.Dirty, st.Reason)
	require.Empty(t, st.Pending)
	all := fileVersions(t, embedded(t))
	require.Equal(t, all[len(all)-1], st.Current)
}

func TestRevisionsInOwnSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.EmptyURL(t))
	_, err := migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{})
	require.NoError(t, err)
	require.Equal(t, fileVersions(t, embedded(t)), versions(t, d, "runledger.atlas_schema_revisions"))
	var inPublic bool
	require.NoError(t, d.QueryRow(`SELECT to_regclass('public.atlas_schema_revisions') IS NOT NULL`).Scan(&inPublic))
	require.False(t, inPublic, "runledger writes nothing to the app's revisions table")
}

// TestAppMigrationsInterleaved applies an app's own Atlas directory (the
// atlas executor, its revisions in public.atlas_schema_revisions) and
// runledger's on one database, in both orders, with the app's files older
// and newer than runledger's: neither sees the other's versions, so neither
// reports a file "added out of order" or a dirty state.
func TestAppMigrationsInterleaved(t *testing.T) {
	t.Parallel()
	for _, appFirst := range []bool{true, false} {
		name := "runledger first"
		if appFirst {
			name = "app first"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := openSQL(t, dbtest.EmptyURL(t))
			if appFirst {
				applyApp(ctx, t, d, appDir(t, false), false)
			}
			_, err := migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{})
			require.NoError(t, err)
			// runledger's tables are in public now: an app that applies for
			// the first time after them needs allow-dirty (or a baseline),
			// as with any table it does not manage.
			applyApp(ctx, t, d, appDir(t, false), !appFirst)
			applyApp(ctx, t, d, appDir(t, true), false)
			res, err := migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{})
			require.NoError(t, err)
			require.Empty(t, res.Files)

			require.Empty(t, appPending(ctx, t, d, appDir(t, true)))
			requireRunledgerClean(ctx, t, d)
			require.Equal(t, []string{"20200101000000", "29990101000000"}, versions(t, d, "public.atlas_schema_revisions"))
			require.Equal(t, fileVersions(t, embedded(t)), versions(t, d, "runledger.atlas_schema_revisions"))
			_, err = d.Exec(`INSERT INTO app_user VALUES (1, 'ann'); INSERT INTO app_order VALUES (1, 1)`)
			require.NoError(t, err, "the app's tables are there")
		})
	}
}

// legacyDatabase returns a database migrated the way runledger did before
// it had its own schema: revisions in public.atlas_schema_revisions, with an
// app's revision beside them when withApp is set.
func legacyDatabase(ctx context.Context, t *testing.T, withApp bool) string {
	t.Helper()
	url := dbtest.EmptyURL(t)
	d := openSQL(t, url)
	if withApp {
		applyApp(ctx, t, d, appDir(t, false), false)
	}
	_, err := migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{})
	require.NoError(t, err)
	_, err = d.Exec(appRevisionsDDL + `;
		INSERT INTO public.atlas_schema_revisions SELECT * FROM runledger.atlas_schema_revisions;
		DROP SCHEMA runledger CASCADE`)
	require.NoError(t, err)
	return url
}

func TestLegacyRevisionsMovedOnce(t *testing.T) {
	t.Parallel()
	for _, withApp := range []bool{false, true} {
		name := "runledger alone"
		if withApp {
			name = "beside an app's revisions"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := legacyDatabase(ctx, t, withApp)
			d := openSQL(t, url)

			// Status reads the legacy table and changes nothing.
			requireRunledgerClean(ctx, t, d)
			dry, err := migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{DryRun: true})
			require.NoError(t, err)
			require.Empty(t, dry.Files)
			var own bool
			require.NoError(t, d.QueryRow(`SELECT to_regnamespace('runledger') IS NOT NULL`).Scan(&own))
			require.False(t, own, "status and dry runs move nothing")

			// Concurrent applies: one moves the rows, under the lock; the
			// others find them moved; nobody applies a file again.
			const n = 4
			var (
				wg      sync.WaitGroup
				results [n]*migrate.ApplyResult
				errs    [n]error
			)
			dir := embedded(t)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := sql.Open("postgres", url)
					if err != nil {
						errs[i] = err
						return
					}
					defer c.Close()
					results[i], errs[i] = migrate.Apply(ctx, c, dir, migrate.ApplyOptions{})
				}()
			}
			wg.Wait()
			require.NoError(t, errors.Join(errs[:]...))
			for _, r := range results {
				require.Empty(t, r.Files)
			}
			require.Equal(t, fileVersions(t, embedded(t)), versions(t, d, "runledger.atlas_schema_revisions"))
			var inPublic bool
			require.NoError(t, d.QueryRow(`SELECT to_regclass('public.atlas_schema_revisions') IS NOT NULL`).Scan(&inPublic))
			if withApp {
				require.True(t, inPublic)
				require.Equal(t, []string{"20200101000000"}, versions(t, d, "public.atlas_schema_revisions"), "the app's revision stays")
				applyApp(ctx, t, d, appDir(t, true), false)
				require.Empty(t, appPending(ctx, t, d, appDir(t, true)))
			} else {
				require.False(t, inPublic, "an emptied legacy table is dropped")
			}
			requireRunledgerClean(ctx, t, d)

			// Once: a legacy row that shows up again later is not moved
			// over runledger's own history.
			_, err = d.Exec(appRevisionsDDL + `;
				INSERT INTO public.atlas_schema_revisions SELECT * FROM runledger.atlas_schema_revisions LIMIT 1
				ON CONFLICT DO NOTHING`)
			require.NoError(t, err)
			_, err = migrate.Apply(ctx, d, embedded(t), migrate.ApplyOptions{})
			require.NoError(t, err)
			require.Equal(t, fileVersions(t, embedded(t)), versions(t, d, "runledger.atlas_schema_revisions"))
			require.NotEmpty(t, versions(t, d, "public.atlas_schema_revisions"))
		})
	}
}
