package pgserver_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/pgserver"
)

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	d, err := sql.Open("postgres", url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestLifecycle starts a private server, survives a fast restart and a crash
// (immediate stop), streams to a standby, and leaves nothing behind.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := pgserver.ForTest(t, pgserver.Options{Settings: map[string]string{"fsync": "off"}})
	d := open(t, s.URL("postgres"))
	_, err := d.ExecContext(ctx, `CREATE TABLE t (n int)`)
	require.NoError(t, err)
	_, err = d.ExecContext(ctx, `INSERT INTO t VALUES (1)`)
	require.NoError(t, err)

	var fsync string
	require.NoError(t, d.QueryRowContext(ctx, `SHOW fsync`).Scan(&fsync))
	require.Equal(t, "off", fsync)

	for _, mode := range []pgserver.Mode{pgserver.Fast, pgserver.Immediate} {
		require.NoError(t, s.Restart(ctx, mode))
		var n int
		require.NoError(t, d.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n), "after %s restart", mode)
		require.Equal(t, 1, n)
	}

	sb, err := s.Standby(ctx)
	require.NoError(t, err)
	sd := open(t, sb.URL("postgres"))
	_, err = d.ExecContext(ctx, `INSERT INTO t VALUES (2)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		return sd.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n) == nil && n == 2
	}, 30*time.Second, 50*time.Millisecond)
	var rec bool
	require.NoError(t, sd.QueryRowContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&rec))
	require.True(t, rec)
	_, err = sd.ExecContext(ctx, `INSERT INTO t VALUES (3)`)
	require.Error(t, err, "a standby refuses writes")

	_ = sd.Close()
	require.NoError(t, sb.Close())
	_, err = os.Stat(sb.Dir())
	require.True(t, os.IsNotExist(err), "standby directory removed")
	_ = d.Close()
	require.NoError(t, s.Close())
	_, err = os.Stat(s.Dir())
	require.True(t, os.IsNotExist(err), "directory removed")
	require.NoError(t, s.Close(), "Close twice")
}
