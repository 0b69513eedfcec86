package cli_test

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/cli"
)

// badURLs hold a password ("S3cr3t") in connection strings that no server
// answers: malformed, or on port 1.
var badURLs = []string{
	"postgres://root:Pw-S3cr3t-1@127.0.0.1:notaport/rl",
	"postgres://root:Pw-S3cr3t-2@[::1/rl",
	"postgres://root:Pw-S3cr3t-3@127.0.0.1:1/rl?sslmode=disable&connect_timeout=2",
	"postgres://root:Pw%zzS3cr3t-4@127.0.0.1:1/rl?sslmode=disable",
	"postgresql://root:Pw/S3cr3t@5@127.0.0.1:1/rl?sslmode=disable",
	"host=127.0.0.1 port=1 user=root password=Pw-S3cr3t-6 dbname=rl sslmode=disable connect_timeout=2",
	"host=127.0.0.1 password='Pw S3cr3t 7",
	"postgres://root:Pw-S3cr3t-8@127.0.0.1:1/rl?sslmode=bogus",
	"postgres://root@127.0.0.1:1/rl?password=Pw-S3cr3t-9&sslmode=disable",
}

// leafCommands returns each runnable command of the tree with the
// arguments its Use line names (ID a UUID, anything else "x"), once per
// alternative ("diff NAME | diff --check").
func leafCommands(c *cobra.Command) map[*cobra.Command][][]string {
	out := map[*cobra.Command][][]string{}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			p := append(append([]string{}, path...), sub.Name())
			if sub.HasAvailableSubCommands() {
				walk(sub, p)
				continue
			}
			for _, alt := range strings.Split(sub.Use, "|") {
				args := append([]string{}, p...)
				for _, w := range strings.Fields(alt)[1:] {
					switch {
					case w == "ID":
						args = append(args, "6f1c3f0e-0000-4000-8000-000000000000")
					case strings.HasPrefix(w, "--"):
						args = append(args, w)
					case strings.ToUpper(w) == w:
						args = append(args, "x")
					}
				}
				out[sub] = append(out[sub], args)
			}
		}
	}
	walk(c, nil)
	return out
}

// TestNoCommandPrintsAPassword feeds every URL flag of every command, and
// DATABASE_URL, connection strings holding a password that cannot be used
// (malformed or unreachable), and asserts that the password appears in
// nothing the command prints.
func TestNoCommandPrintsAPassword(t *testing.T) {
	t.Parallel()
	leaves := leafCommands(cli.NewRoot(cli.Env{}))
	tried := 0
	for cmd, variants := range leaves {
		var urlFlags []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.HasSuffix(f.Name, "url") {
				urlFlags = append(urlFlags, f.Name)
			}
		})
		if len(urlFlags) == 0 {
			continue // writes files (new, hash) or reads only the directory
		}
		for _, args := range variants {
			for _, u := range badURLs {
				var runs []struct {
					env  map[string]string
					args []string
				}
				for _, f := range urlFlags {
					runs = append(runs,
						struct {
							env  map[string]string
							args []string
						}{nil, append(append([]string{}, args...), "--"+f, u)},
						struct {
							env  map[string]string
							args []string
						}{nil, append(append([]string{}, args...), "--"+f+"="+u)})
					if f == "url" {
						runs = append(runs, struct {
							env  map[string]string
							args []string
						}{map[string]string{"DATABASE_URL": u}, args})
					}
				}
				for _, r := range runs {
					res := run(t, r.env, r.args...)
					tried++
					require.NotEqual(t, 0, res.code, "%q env %v", r.args, r.env)
					require.NotContains(t, res.stdout+res.stderr, "S3cr3t", "%q env %v:\n%s%s", r.args, r.env, res.stdout, res.stderr)
				}
			}
		}
	}
	require.Greater(t, tried, 100)
}

// TestPGPasswordNeverPrinted: a password from PGPASSWORD is redacted too.
func TestPGPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	r := run(t, map[string]string{"PGPASSWORD": "Pw-S3cr3t-env", "DATABASE_URL": "postgres://root:Pw-S3cr3t-env@127.0.0.1:bad/x"}, "migrate", "status")
	require.Equal(t, 1, r.code)
	require.NotContains(t, r.stdout+r.stderr, "S3cr3t")
	r = run(t, map[string]string{"DATABASE_URL": "postgres://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"DATABASE_READ_URL": "postgres://root:Pw-S3cr3t-read@127.0.0.1:bad/x"}, "progress", "6f1c3f0e-0000-4000-8000-000000000000")
	require.NotEqual(t, 0, r.code)
	require.NotContains(t, r.stdout+r.stderr, "S3cr3t")
}
