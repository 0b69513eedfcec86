package cli_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/cli"
	"github.com/runledger/runledger/internal/dbtest"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{
		Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return result{code, out.String(), errOut.String()}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "help")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "runledger migrate apply")
	r = run(t, nil, "frobnicate")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `unknown command "frobnicate"`)
	r = run(t, nil, "migrate", "apply")
	require.Equal(t, 2, r.code, "no database is a usage error")
	require.Contains(t, r.stderr, "DATABASE_URL")
	r = run(t, nil, "migrate", "diff")
	require.Equal(t, 2, r.code)
}

func TestMigrateApplyStatus(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": dbtest.EmptyURL(t)}
	r := run(t, env, "migrate", "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "current version: none")

	r = run(t, env, "migrate", "apply", "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "would apply")

	r = run(t, env, "migrate", "apply")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "applied ")
	require.Contains(t, r.stdout, "_init.sql")

	r = run(t, env, "migrate", "apply")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "no pending migrations")

	r = run(t, env, "migrate", "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "pending: 0")
	require.Contains(t, r.stdout, "dirty: no")
}

func TestMigrateValidateAndCheck(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "migrate", "validate")
	require.Equal(t, 0, r.code, r.stderr)
	r = run(t, nil, "migrate", "diff", "--check", "--dev-url", dbtest.ServerURL())
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "in sync")
}

func TestDemo(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": dbtest.EmptyURL(t)}
	for range 2 { // running twice works
		r := run(t, env, "demo")
		require.Equal(t, 0, r.code, r.stderr)
		for _, want := range []string{"automation invoice-processing-", "└── run ", "[failed]", "batch north [succeeded]",
			"item #1 INV-1002 [succeeded] attempts=2", "history: queued → running → retrying → running → succeeded",
			"error: invoice total does not match its lines", "orchestration jenkins-"} {
			require.Contains(t, r.stdout, want)
		}
	}
}

func TestBadURLNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"postgres://u:sup3rs3cret@[bad/x", "postgres://u:sup3rs3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"} {
		r := run(t, map[string]string{"DATABASE_URL": url}, "migrate", "status")
		require.Equal(t, 1, r.code)
		require.NotContains(t, r.stderr+r.stdout, "sup3rs3cret")
	}
}
