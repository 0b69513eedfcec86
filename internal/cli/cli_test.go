package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/cli"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/report"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runOn(t, false, env, args...)
}

// runOn runs the command with stdout seen as a terminal or not.
func runOn(t *testing.T, terminal bool, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, cli.Env{
		Stdout: &out, Stderr: &errOut,
		Getenv:     func(k string) string { return env[k] },
		IsTerminal: func(io.Writer) bool { return terminal },
	})
	return result{code, out.String(), errOut.String()}
}

// commandPaths lists every command of the tree as its arguments.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		p := append(append([]string{}, prefix...), sub.Name())
		out = append(out, p)
		out = append(out, commandPaths(sub, p)...)
	}
	return out
}

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	paths := append([][]string{nil}, commandPaths(cli.NewRoot(cli.Env{}), nil)...)
	require.Greater(t, len(paths), 10)
	for _, p := range paths {
		for _, flag := range []string{"--help", "-h"} {
			r := run(t, nil, append(append([]string{}, p...), flag)...)
			require.Equal(t, 0, r.code, "%v %s: %s", p, flag, r.stderr)
			require.Empty(t, r.stderr, "%v %s", p, flag)
			require.Contains(t, r.stdout, "Usage:\n  runledger", "%v %s", p, flag)
		}
		r := run(t, nil, append([]string{"help"}, p...)...)
		require.Equal(t, 0, r.code, "help %v: %s", p, r.stderr)
		require.Contains(t, r.stdout, "Usage:", "help %v", p)
	}
	r := run(t, nil, "migrate")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "runledger migrate status")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		r := run(t, nil, args...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^runledger \S+ revision \S+`, r.stdout)
	}
}

func TestUsageErrorsPrintedOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "apply", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"migrate", "frob"}, `unknown command "frob"`},
		{[]string{"migrat"}, `unknown command "migrat" (did you mean "migrate"?)`},
		{[]string{"migrate", "status", "-o", "yaml"}, `want text or json, got "yaml"`},
		{[]string{"migrate", "hash", "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "new"}, "want NAME, got 0 argument(s)"},
		{[]string{"progress"}, "want one run ID"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tc.args...)
			require.Equal(t, 2, r.code, r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, tc.want), r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "--help' for usage."), r.stderr)
			require.Empty(t, r.stdout)
		})
	}
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

	r = run(t, env, "migrate", "status", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var st report.MigrationStatus
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.False(t, st.Dirty)
	require.Empty(t, st.Pending)
	require.NotEmpty(t, st.Current)
	require.Positive(t, st.Applied)
	require.Contains(t, r.stdout, `"pending": []`)

	// The opt-in partitioned layout; a second run finds it done, and the
	// migration commands keep working on it.
	r = run(t, env, "migrate", "partition", "--ahead", "2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "partitioned (3 months")
	r = run(t, env, "migrate", "partition")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "already partitioned")
	r = run(t, env, "migrate", "apply")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "no pending migrations")
	r = run(t, env, "migrate", "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "dirty: no")
}

func TestMigrateStatusPendingJSON(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": dbtest.EmptyURL(t)}
	r := run(t, env, "migrate", "status", "--output=json")
	require.Equal(t, 0, r.code, r.stderr)
	var st report.MigrationStatus
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.Empty(t, st.Current)
	require.NotEmpty(t, st.Pending)
	require.Contains(t, st.Pending[0], "_init.sql")
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
	for i := range 2 { // running twice works; the second time on a terminal
		terminal := i == 1
		r := runOn(t, terminal, env, "demo")
		require.Equal(t, 0, r.code, r.stderr)
		if terminal {
			require.Contains(t, r.stdout, "\r[", "a terminal gets a live progress bar")
		} else {
			require.NotContains(t, r.stdout, "\r", "a pipe gets no progress frames")
			require.Equal(t, 1, strings.Count(r.stdout, "200/200"), "a pipe gets one final progress line")
		}
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
			"runners: host-1 finished: [succeeded] 60 items: 60 succeeded",
			`their context ended with "execution: run cancelled"`,
		} {
			require.Contains(t, r.stdout, want)
		}
		// host-3 is a separate process, elected first, killed mid-run; its
		// items come back through host-1's maintenance.
		for _, want := range []string{
			`runners: receipt-matching-\S+ on host-1 and host-2 \(this process\) and host-3 \(process \d+, the elected maintainer\); host-3 handled 5 items, then 4 of its handlers hung`,
			`runners: host-2 stopped mid-run and handed \d+ item\(s\) back at once`,
			`runners: host-3 killed \(SIGKILL, no Stop\) holding [4-8] item\(s\): host-1 took over maintenance and rescued them [0-9.]+m?s later \(lease 1s, maintenance every 200ms\)`,
		} {
			require.Regexp(t, want, r.stdout)
		}
		m := regexp.MustCompile(`host-3 \(process (\d+)`).FindStringSubmatch(r.stdout)
		require.Len(t, m, 2)
		pid, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "the runner process is gone")
		require.NotContains(t, r.stdout+r.stderr, env["DATABASE_URL"])
	}
}

// TestDemoRunnerEndsWithStdin: the demo's runner process (this test binary
// re-executed, see TestMain) stops when its stdin closes, so it never
// outlives a demo that died; it prints its events and nothing else.
func TestDemoRunnerEndsWithStdin(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, cli.DemoRunnerCommand, "--automation", "nothing-here", "--name", "host-9")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.NewURL(t))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "leader" {
			require.NoError(t, stdin.Close())
		}
	}
	require.NoError(t, cmd.Wait(), stderr.String())
	require.Equal(t, []string{"started", "leader"}, lines)
	require.Empty(t, stderr.String())

	r := run(t, map[string]string{"DATABASE_URL": "postgres://root@127.0.0.1:1/none?sslmode=disable"}, cli.DemoRunnerCommand, "--name", "host-9")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "want --automation and --name")
}

// TestDemoZeroSetup runs the demo with no DATABASE_URL and nothing on the
// default server's port: it starts a private server, says so, and removes it.
func TestDemoZeroSetup(t *testing.T) {
	t.Parallel()
	r := run(t, map[string]string{"RUNLEDGER_DEFAULT_SERVER": "postgres://root@127.0.0.1:1/postgres?sslmode=disable"}, "demo")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 1, strings.Count(r.stdout, "no PostgreSQL at 127.0.0.1:1: started a private server on 127.0.0.1:"), r.stdout)
	require.Contains(t, r.stdout, "200 items: 199 succeeded, 1 failed")
	require.Contains(t, r.stdout, "The private server and its data are removed now")

	r = run(t, map[string]string{"RUNLEDGER_DEFAULT_SERVER": "postgres://root@127.0.0.1:1/postgres?sslmode=disable", "CI": "true"}, "demo")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "CI=true")
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

	r = run(t, env, "progress", id, "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var p report.Progress
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &p), r.stdout)
	require.Equal(t, id, p.RunID.String())
	require.Equal(t, runledger.StatusFailed, p.Status)
	require.Equal(t, int64(200), p.Total)
	require.Equal(t, int64(200), p.Finished)
	require.Equal(t, report.Counts{runledger.StatusSucceeded: 199, runledger.StatusFailed: 1}, p.Counts)
	require.Len(t, p.Batches, 2)
	require.Equal(t, "north", p.Batches[0].Name)
	require.Equal(t, int64(120), p.Batches[0].Counts[runledger.StatusSucceeded])

	r = run(t, env, "inspect", "run", "-o", "json", id)
	require.Equal(t, 0, r.code, r.stderr)
	var rep report.Run
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.Equal(t, id, rep.ID.String())
	require.True(t, strings.HasPrefix(rep.Automation.Name, "invoice-processing-"))
	require.True(t, rep.Automation.Active)
	require.Equal(t, int64(200), rep.Total)
	require.Len(t, rep.Orchestrations, 1)
	require.Equal(t, "UNSTABLE", rep.Orchestrations[0].State)
	require.Len(t, rep.Batches, 2)
	south := rep.Batches[1]
	require.Equal(t, "south", south.Batch.Name)
	require.Equal(t, report.ListedProblems, south.Listed)
	require.Len(t, south.Items, 1)
	require.Equal(t, int32(13), south.Items[0].SequenceNumber)
	require.Equal(t, "invoice total does not match its lines", south.Items[0].Error)
	require.Len(t, south.Items[0].History, 7)
	require.Nil(t, south.Items[0].History[0].From)

	r = run(t, env, "progress", "not-a-uuid")
	require.Equal(t, 2, r.code)
	missing := "6f1c3f0e-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		path string
		args []string
	}{
		{"inspect run", []string{"inspect", "run", missing}},
		{"inspect run", []string{"inspect", "run", missing, "-o", "json"}},
		{"progress", []string{"progress", missing}},
		{"progress", []string{"progress", missing, "-o", "json"}},
	} {
		r = run(t, env, tc.args...)
		require.Equal(t, 1, r.code, tc.args)
		require.Equal(t, "runledger "+tc.path+": run "+missing+" not found\n", r.stderr, "one wording for a missing run")
		require.Empty(t, r.stdout)
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
