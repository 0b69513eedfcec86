package cli_test

import (
	"bytes"
	"context"
	"strings"
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
		for _, want := range []string{
			"batch north: 120 items added", "200/200",
			"rescued 5 item(s) whose lease expired when worker-4 died",
			"cancelled (115 at once, 5 when their worker reported): [cancelled] 120 items: 120 cancelled",
			"automation invoice-processing-", "└── run ", "[failed]", "200 items: 199 succeeded, 1 failed",
			"batch north [succeeded]", "batch south [failed]",
			"item #13 INV-2013 [failed] attempts=3",
			"history: queued → running → retrying → running → retrying → running → failed",
			"error: invoice total does not match its lines",
			"orchestration jenkins-demo (jenkins) invoices#", "state=UNSTABLE",
			"runledger inspect run ",
		} {
			require.Contains(t, r.stdout, want)
		}
	}
}

func TestInspectAndProgress(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": dbtest.EmptyURL(t)}
	r := run(t, env, "demo")
	require.Equal(t, 0, r.code, r.stderr)
	i := strings.Index(r.stdout, "runledger inspect run ")
	require.GreaterOrEqual(t, i, 0)
	id := strings.Fields(r.stdout[i+len("runledger inspect run "):])[0]

	r = run(t, env, "inspect", "run", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "item #13 INV-2013 [failed] attempts=3")
	require.Contains(t, r.stdout, "error summary: 1 of 200 items did not succeed")

	r = run(t, env, "progress", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[failed] 200 items: 199 succeeded, 1 failed")
	require.Contains(t, r.stdout, "batch north [succeeded] 120 items: 120 succeeded")

	r = run(t, env, "progress", "not-a-uuid")
	require.Equal(t, 2, r.code)
	r = run(t, env, "inspect", "run", "6f1c3f0e-0000-4000-8000-000000000000")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")
}

func TestBadURLNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"postgres://u:sup3rs3cret@[bad/x", "postgres://u:sup3rs3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"} {
		r := run(t, map[string]string{"DATABASE_URL": url}, "migrate", "status")
		require.Equal(t, 1, r.code)
		require.NotContains(t, r.stderr+r.stdout, "sup3rs3cret")
	}
}
