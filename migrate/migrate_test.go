package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"

	amigrate "ariga.io/atlas/sql/migrate"
	_ "github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

func openSQL(t *testing.T, url string) *sql.DB {
	t.Helper()
	d, err := sql.Open("postgres", url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func embedded(t *testing.T) amigrate.Dir {
	t.Helper()
	dir, err := migrate.Embedded()
	require.NoError(t, err)
	return dir
}

// copyDir returns an in-memory copy of the embedded directory with extra
// files added (and atlas.sum rehashed).
func copyDir(t *testing.T, extra map[string]string) *amigrate.MemDir {
	t.Helper()
	files, err := embedded(t).Files()
	require.NoError(t, err)
	mem := &amigrate.MemDir{}
	require.NoError(t, mem.CopyFiles(files))
	for name, body := range extra {
		require.NoError(t, mem.WriteFile(name, []byte(body)))
	}
	require.NoError(t, migrate.Hash(mem))
	return mem
}

func TestApplyTwiceIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.EmptyURL(t))
	dir := embedded(t)
	files, err := dir.Files()
	require.NoError(t, err)

	dry, err := migrate.Apply(ctx, d, dir, migrate.ApplyOptions{DryRun: true})
	require.NoError(t, err)
	require.Len(t, dry.Files, len(files))
	var tables int
	require.NoError(t, d.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
	require.Zero(t, tables, "a dry run changes nothing")

	res, err := migrate.Apply(ctx, d, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	require.Len(t, res.Files, len(files))
	require.Equal(t, files[len(files)-1].Version(), res.To)
	for _, f := range res.Files {
		require.Positive(t, f.Statements)
	}

	again, err := migrate.Apply(ctx, d, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	require.Empty(t, again.Files)
	require.Equal(t, res.To, again.From)

	st, err := migrate.Status(ctx, d, dir)
	require.NoError(t, err)
	require.Equal(t, res.To, st.Current)
	require.Empty(t, st.Pending)
	require.False(t, st.Dirty)
}

func TestDiffAfterApplyPlansNothing(t *testing.T) {
	t.Parallel()
	// Check replays the directory on a fresh dev database and diffs it with
	// ent/schema: partial-index predicates and CHECKs must round-trip.
	require.NoError(t, migrate.Check(context.Background(), embedded(t), migrate.DiffOptions{DevURL: dbtest.ServerURL()}))
}

func TestCheckFindsDrift(t *testing.T) {
	t.Parallel()
	dir := copyDir(t, map[string]string{"99990101000000_drift.sql": "DROP INDEX run_correlation_id;\n"})
	err := migrate.Check(context.Background(), dir, migrate.DiffOptions{DevURL: dbtest.ServerURL()})
	require.ErrorIs(t, err, migrate.ErrDrift)
	require.Contains(t, err.Error(), "run_correlation_id")
}

func TestTamperedSumRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	files, err := embedded(t).Files()
	require.NoError(t, err)
	mem := &amigrate.MemDir{}
	require.NoError(t, mem.CopyFiles(files))
	name := files[0].Name()
	require.NoError(t, mem.WriteFile(name, append(files[0].Bytes(), []byte("\n-- sneaky edit\n")...)))

	err = migrate.Validate(mem)
	require.ErrorIs(t, err, amigrate.ErrChecksumMismatch)
	require.Contains(t, err.Error(), name)

	d := openSQL(t, dbtest.EmptyURL(t))
	_, err = migrate.Apply(ctx, d, mem, migrate.ApplyOptions{})
	require.ErrorIs(t, err, amigrate.ErrChecksumMismatch)
	var tables int
	require.NoError(t, d.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'atlas_schema_revisions'`).Scan(&tables))
	require.Zero(t, tables)
}

func TestFailingFileLeavesNoTrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.NewURL(t))
	before, err := migrate.Status(ctx, d, embedded(t))
	require.NoError(t, err)
	dir := copyDir(t, map[string]string{"99990101000000_broken.sql": "CREATE TABLE a1 (id int);\n" +
		"CREATE TABLE a2 (id int);\n" +
		"INSERT INTO missing_table VALUES (1);\n" +
		"CREATE TABLE a3 (id int);\n"})
	_, err = migrate.Apply(ctx, d, dir, migrate.ApplyOptions{})
	var se *migrate.StmtError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "99990101000000_broken.sql", se.File)
	require.Equal(t, 3, se.Pos)
	require.Contains(t, se.Stmt, "missing_table")
	require.Contains(t, err.Error(), `relation "missing_table" does not exist`)

	var n int
	require.NoError(t, d.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename IN ('a1', 'a2', 'a3')`).Scan(&n))
	require.Zero(t, n, "the failed file's earlier statements were rolled back")
	after, err := migrate.Status(ctx, d, dir)
	require.NoError(t, err)
	require.Equal(t, before.Current, after.Current)
	require.False(t, after.Dirty)
	require.Len(t, after.Pending, 1)
}

func TestEditedAppliedFileRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.NewURL(t))
	files, err := embedded(t).Files()
	require.NoError(t, err)
	mem := &amigrate.MemDir{}
	require.NoError(t, mem.CopyFiles(files))
	require.NoError(t, mem.WriteFile(files[0].Name(), append(files[0].Bytes(), []byte("\n-- edited and rehashed\n")...)))
	require.NoError(t, migrate.Hash(mem))
	_, err = migrate.Apply(ctx, d, mem, migrate.ApplyOptions{})
	var hc *migrate.HistoryChangedError
	require.ErrorAs(t, err, &hc)
	require.Equal(t, files[0].Name(), hc.File)
}

func TestConcurrentApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.EmptyURL(t)
	dir := embedded(t)
	var (
		wg      sync.WaitGroup
		results [2]*migrate.ApplyResult
		errs    [2]error
	)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := sql.Open("postgres", url)
			if err != nil {
				errs[i] = err
				return
			}
			defer d.Close()
			results[i], errs[i] = migrate.Apply(ctx, d, dir, migrate.ApplyOptions{})
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs[:]...))
	files, err := dir.Files()
	require.NoError(t, err)
	applied := len(results[0].Files) + len(results[1].Files)
	require.Equal(t, len(files), applied, "one apply ran every file, the other waited and found nothing")
	require.True(t, len(results[0].Files) == 0 || len(results[1].Files) == 0)
}

func TestApplyTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.NewURL(t))
	dir := copyDir(t, map[string]string{
		"99990101000000_one.sql": "CREATE TABLE one (id int);\n",
		"99990102000000_two.sql": "CREATE TABLE two (id int);\n",
	})
	res, err := migrate.Apply(ctx, d, dir, migrate.ApplyOptions{ToVersion: "99990101000000"})
	require.NoError(t, err)
	require.Len(t, res.Files, 1)
	st, err := migrate.Status(ctx, d, dir)
	require.NoError(t, err)
	require.Equal(t, "99990101000000", st.Current)
	require.Len(t, st.Pending, 1)
	_, err = migrate.Apply(ctx, d, dir, migrate.ApplyOptions{ToVersion: "12345"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "not pending")
}
