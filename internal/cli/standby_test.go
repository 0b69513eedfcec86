package cli_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/internal/report"
)

// TestReadsOnStandbyCLI: the read commands with --read-url (or
// DATABASE_READ_URL) read a pg_basebackup standby, say so, and answer what
// they answer on the primary.
func TestReadsOnStandbyCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := pgserver.ForTest(t, pgserver.Options{Settings: map[string]string{"fsync": "off"}})
	admin, err := sql.Open("postgres", primary.URL("postgres"))
	require.NoError(t, err)
	_, err = admin.ExecContext(ctx, `CREATE DATABASE runledger`)
	require.NoError(t, err)
	require.NoError(t, admin.Close())
	primaryURL := primary.URL("runledger")
	standby, err := primary.Standby(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = standby.Close() })
	standbyURL := standby.URL("runledger")
	env := map[string]string{"DATABASE_URL": primaryURL}
	r := run(t, env, "demo")
	require.Equal(t, 0, r.code, r.stderr)
	i := strings.Index(r.stdout, "runledger inspect run ")
	require.GreaterOrEqual(t, i, 0)
	id := strings.Fields(r.stdout[i+len("runledger inspect run "):])[0]

	caughtUp(t, primaryURL, standbyURL)

	progressJSON := func(env map[string]string, args ...string) report.Progress {
		t.Helper()
		r := run(t, env, append([]string{"progress", id, "-o", "json"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var p report.Progress
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &p), r.stdout)
		return p
	}
	want := progressJSON(env)
	require.Nil(t, want.Staleness)
	for name, got := range map[string]report.Progress{
		"--read-url":              progressJSON(env, "--read-url", standbyURL),
		"DATABASE_READ_URL":       progressJSON(map[string]string{"DATABASE_URL": primaryURL, "DATABASE_READ_URL": standbyURL}),
		"DATABASE_READ_URL alone": progressJSON(map[string]string{"DATABASE_READ_URL": standbyURL}),
	} {
		require.NotNil(t, got.Staleness, name)
		require.True(t, got.Staleness.Standby, name)
		require.True(t, got.Staleness.CaughtUp, name)
		require.False(t, got.Staleness.LastReplayedAt.IsZero(), name)
		got.Staleness = nil
		require.Equal(t, want, got, name)
	}
	// An explicit --url wins over DATABASE_READ_URL.
	require.Nil(t, progressJSON(map[string]string{"DATABASE_READ_URL": standbyURL}, "--url", primaryURL).Staleness)

	r = run(t, env, "progress", id, "--read-url", standbyURL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[failed] 200 items: 199 succeeded, 1 failed")
	require.Contains(t, r.stdout, "read from a standby, caught up (last replayed transaction ")

	onPrimary := run(t, env, "inspect", "run", id, "-o", "json")
	require.Equal(t, 0, onPrimary.code, onPrimary.stderr)
	onStandby := run(t, env, "inspect", "run", id, "-o", "json", "--read-url", standbyURL)
	require.Equal(t, 0, onStandby.code, onStandby.stderr)
	var a, b report.Run
	require.NoError(t, json.Unmarshal([]byte(onPrimary.stdout), &a))
	require.NoError(t, json.Unmarshal([]byte(onStandby.stdout), &b))
	require.NotNil(t, b.Staleness)
	b.Staleness = nil
	require.Equal(t, a, b)
	r = run(t, env, "inspect", "run", id, "--read-url", standbyURL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "item #13 INV-2013 [failed] attempts=3")
	require.Contains(t, r.stdout, "read from a standby")

	statusJSON := func(args ...string) report.MigrationStatus {
		t.Helper()
		r := run(t, env, append([]string{"migrate", "status", "-o", "json"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var st report.MigrationStatus
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
		return st
	}
	ws, gs := statusJSON(), statusJSON("--read-url", standbyURL)
	require.NotEqual(t, ws.Database, gs.Database)
	gs.Database = ws.Database
	require.Equal(t, ws, gs)
	require.NotEmpty(t, gs.Current)

	// Commands that write have no --read-url.
	r = run(t, env, "migrate", "apply", "--read-url", standbyURL)
	require.Equal(t, 2, r.code, r.stderr)
}

// caughtUp waits until the standby has replayed what the primary wrote.
func caughtUp(t *testing.T, primaryURL, standbyURL string) {
	t.Helper()
	ctx := context.Background()
	p, err := sql.Open("postgres", primaryURL)
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	s, err := sql.Open("postgres", standbyURL)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	var lsn string
	require.NoError(t, p.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn))
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done bool
		require.NoError(t, s.QueryRowContext(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done))
		if done {
			return
		}
		require.True(t, time.Now().Before(deadline), "standby did not replay %s in time", lsn)
		time.Sleep(10 * time.Millisecond)
	}
}
