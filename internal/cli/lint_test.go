package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

func runLint(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	r := run(t, nil, append([]string{"migrate", "lint"}, args...)...)
	return r.code, r.stdout, r.stderr
}

func TestLintCommandOurMigrations(t *testing.T) {
	t.Parallel()
	code, out, errs := runLint(t, "--dev-url", dbtest.ServerURL())
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errs)
	require.Contains(t, out, ": 0 errors, 0 warnings, 1 ignored\n", "the one reviewed MF104 of the automation_id migration")
}

func TestLintCommandReportsFindings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	write("20260101000000_base.sql", `CREATE TABLE "pet" ("id" bigint NOT NULL, "nick" text NULL, "name" text NULL, PRIMARY KEY ("id"));
CREATE TABLE "toy" ("id" bigint NOT NULL, PRIMARY KEY ("id"));
`)
	write("20260102000000_change.sql", `-- lint:ignore DS102 toy was never used
DROP TABLE "toy";
ALTER TABLE "pet" DROP COLUMN "nick";
`)
	local, err := migrate.Local(dir)
	require.NoError(t, err)
	require.NoError(t, migrate.Hash(local))

	code, out, errs := runLint(t, "--latest", "1", "--dir", dir, "--dev-url", dbtest.ServerURL())
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errs)
	require.Equal(t, `20260102000000_change.sql:3 DS103 error Dropping non-virtual column "nick"
	ALTER TABLE "pet" DROP COLUMN "nick";
20260102000000_change.sql:2 DS102 ignored: toy was never used
linted 1 file (after replaying 1 earlier file): 1 error, 0 warnings, 1 ignored
`, out)
	require.Contains(t, errs, "1 error-level finding")
}

func TestLintCommandUsage(t *testing.T) {
	t.Parallel()
	code, _, errs := runLint(t, "--latest", "-1")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "--latest")
	code, _, _ = runLint(t, "extra")
	require.Equal(t, 2, code)
}
