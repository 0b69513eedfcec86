package runledgertest_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	_ "github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/enttest"
	"github.com/runledger/runledger/runledgertest"
)

// guards counts the user triggers of the public schema: the guards,
// history and version triggers of the migrations.
func guards(t *testing.T, url string) int {
	t.Helper()
	d, err := sql.Open("postgres", url)
	require.NoError(t, err)
	defer d.Close()
	var n int
	require.NoError(t, d.QueryRow(`SELECT count(*) FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
		WHERE NOT tg.tgisinternal AND c.relnamespace = 'public'::regnamespace
		AND NOT c.relispartition`).Scan(&n)) // the partitioned layout's copies on partitions are not counted
	return n
}

// refusesIllegalTransition moves a run to succeeded and back to running.
func refusesIllegalTransition(ctx context.Context, t *testing.T, c *ent.Client) {
	t.Helper()
	a, err := c.Automation.Create().SetName("enttest").Save(ctx)
	require.NoError(t, err)
	r, err := c.Run.Create().SetAutomation(a).SetStatus(runledger.StatusQueued).Save(ctx)
	require.NoError(t, err)
	r, err = c.Run.UpdateOne(r).SetStatus(runledger.StatusSucceeded).Save(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), r.Version, "the version trigger raised the version")
	_, err = c.Run.UpdateOne(r).SetStatus(runledger.StatusRunning).Save(ctx)
	require.ErrorIs(t, err, runledger.ErrIllegalTransition)
}

func TestNewIsMigratedAndFresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := runledgertest.New(t)
	refusesIllegalTransition(ctx, t, d.Client)
	other := runledgertest.New(t)
	n, err := other.Automation.Query().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "each test gets its own database")
	require.Positive(t, guards(t, runledgertest.NewURL(t)))
}

func TestEnttestAppliesTheRealMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want := guards(t, runledgertest.NewURL(t))
	require.Positive(t, want)

	url := runledgertest.EmptyURL(t)
	c := enttest.Open(t, dialect.Postgres, url)
	t.Cleanup(func() { _ = c.Close() })
	require.Equal(t, want, guards(t, url), "enttest's database has every trigger a migrated one has")
	refusesIllegalTransition(ctx, t, c)
}

// TestUsableFromAnotherModule builds and runs a test in a throwaway module
// that requires runledger through a replace directive, as a user's module
// would.
func TestUsableFromAnotherModule(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	goSum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)

	dir := t.TempDir()
	// runledger's own requirements, so nothing needs downloading.
	requires := regexp.MustCompile(`(?s)require \(.*?\)\n`).FindAll(goMod, -1)
	mod := "module example.com/invoices\n\ngo " + regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(string(goMod))[1] + "\n\n" +
		"require github.com/runledger/runledger v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/runledger/runledger => " + root + "\n\n" + string(bytesJoin(requires))
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	write("go.mod", mod)
	write("go.sum", string(goSum))
	write("invoices_test.go", `package invoices

import (
	"context"
	"errors"
	"testing"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent/enttest"
	"github.com/runledger/runledger/runledgertest"
)

func TestInvoices(t *testing.T) {
	ctx := context.Background()
	d := runledgertest.New(t)
	a, err := d.Automation.Create().SetName("invoices").Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Run.Create().SetAutomation(a).SetStatus(runledger.StatusSucceeded).Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Run.UpdateOne(r).SetStatus(runledger.StatusRunning).Save(ctx); !errors.Is(err, runledger.ErrIllegalTransition) {
		t.Fatalf("want an illegal transition, got %v", err)
	}
	c := enttest.Open(t, "postgres", runledgertest.EmptyURL(t))
	defer c.Close()
	if _, err := c.Automation.Create().SetName("invoices").Save(ctx); err != nil {
		t.Fatal(err)
	}
}
`)
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is on PATH")
	cmd := exec.Command(goBin, "test", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.True(t, strings.HasPrefix(string(out), "ok "), "%s", out)
}

func bytesJoin(bs [][]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
		out = append(out, '\n')
	}
	return out
}
