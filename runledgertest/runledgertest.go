// Package runledgertest gives a test its own PostgreSQL database, migrated
// by runledger's real migration files (guards, triggers and history
// included), for tests of code that uses runledger, in this module or in
// yours:
//
//	func TestInvoices(t *testing.T) {
//		d := runledgertest.New(t) // *db.DB on a fresh database, dropped when the test ends
//		a, err := d.Automation.Create().SetName("invoices").Save(ctx)
//		...
//	}
//
// The first call in a test process builds (or finds) a template database on
// the server, one per set of migrations (named by a hash of atlas.sum) and
// shared by every test process; each test gets a clone, which takes a few
// tens of milliseconds.
//
// The server comes from TEST_DATABASE_URL, else DATABASE_URL, else the local
// server (postgres://root@127.0.0.1:5432/postgres), else a private server
// started for the test process (see ServerURL). The role needs CREATEDB. A
// test never skips for want of a database: it fails and says how to start
// one.
//
// RUNLEDGER_TEST_LAYOUT=partitioned gives every migrated database the
// partitioned layout (migrate.Partition), on a template of its own, so the
// same tests run on both layouts.
package runledgertest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	amigrate "ariga.io/atlas/sql/migrate"
	"github.com/lib/pq"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/localpg"
	"github.com/runledger/runledger/internal/pgurl"
	"github.com/runledger/runledger/migrate"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
)

// ServerURL returns the URL of the server tests run against:
// TEST_DATABASE_URL, else DATABASE_URL, else the local server
// (postgres://root@127.0.0.1:5432/postgres). When none is set and nothing
// answers on the local server's port, it starts a private server from the
// installed PostgreSQL binaries for this test process (one line on stderr
// says so; the server is removed when the process ends, even if killed).
// Under CI=true a missing server is an error instead.
func ServerURL() string {
	serverOnce.Do(func() {
		for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
			if v := os.Getenv(k); v != "" {
				serverURL = v
				return
			}
		}
		say := func(line string) { fmt.Fprintln(os.Stderr, "runledgertest: "+line) }
		srv, err := localpg.Ensure(context.Background(), localpg.OptionsFromEnv(os.Getenv, say))
		if err != nil {
			serverURL, serverErr = pgurl.DefaultServer, err
			return
		}
		serverURL = srv.URL // a private server lives as long as the process
	})
	return serverURL
}

// templateLock serializes template builds across test processes.
const templateLock int64 = 0x72756e6c6474 // "runldt"

var (
	tmplOnce sync.Once
	tmplName string
	tmplErr  error
)

// New returns a client on a fresh, migrated database that is dropped when
// the test ends. The client is closed before the database is dropped.
func New(t testing.TB) *db.DB {
	t.Helper()
	url := NewURL(t)
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: url, PoolSize: 4, MaxOverflow: 28})
	if err != nil {
		t.Fatalf("runledgertest: open test database: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// NewURL creates a fresh, migrated database and returns its URL. The database
// is dropped when the test ends; close what you opened on it in a Cleanup
// registered after this call (cleanups run last-in first-out).
func NewURL(t testing.TB) string {
	t.Helper()
	url, dropIt, err := Database(context.Background(), true)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(dropIt)
	return url
}

// EmptyURL creates an empty database (no migrations applied) and returns its
// URL; it is dropped when the test ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	url, dropIt, err := Database(context.Background(), false)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(dropIt)
	return url
}

// Database creates a fresh database, migrated (a clone of the template) or
// empty, and returns its URL and a function that drops it. It is for code
// without a testing.TB: a TestMain, an Example.
func Database(ctx context.Context, migrated bool) (url string, dropIt func(), err error) {
	const hint = "\n(start PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or set TEST_DATABASE_URL)"
	server := ServerURL()
	if serverErr != nil {
		return "", nil, fmt.Errorf("runledgertest: %w", serverErr)
	}
	template := "template0"
	if migrated {
		tmplOnce.Do(func() { tmplName, tmplErr = ensureTemplate(server) })
		if tmplErr != nil {
			return "", nil, fmt.Errorf("runledgertest: %w"+hint, tmplErr)
		}
		template = tmplName
	}
	name := "runledger_test_" + randomHex(8)
	admin, err := sql.Open("postgres", server)
	if err != nil {
		return "", nil, fmt.Errorf("runledgertest: %w", pgurl.ErrMalformed)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pq.QuoteIdentifier(name), pq.QuoteIdentifier(template))); err != nil {
		return "", nil, fmt.Errorf("runledgertest: create database on %s: %w"+hint, pgurl.Describe(server), err)
	}
	dropIt = func() { drop(server, name) }
	if url, err = pgurl.WithDatabase(server, name); err != nil {
		dropIt()
		return "", nil, fmt.Errorf("runledgertest: %w", err)
	}
	return url, dropIt, nil
}

func drop(server, name string) {
	admin, err := sql.Open("postgres", server)
	if err != nil {
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
}

// ensureTemplate returns the template database for the embedded migrations,
// building it when missing. It is built under another name and renamed when
// complete, so a crashed build never leaves a half-migrated template.
func ensureTemplate(server string) (string, error) {
	dir, err := migrate.Embedded()
	if err != nil {
		return "", err
	}
	sum, err := fs.ReadFile(dir, "atlas.sum")
	if err != nil {
		return "", fmt.Errorf("read atlas.sum: %w", err)
	}
	// The revisions' place is part of what a template is: a template built
	// before runledger had its own revisions schema is not reused.
	h := sha256.Sum256(append(sum, migrate.RevisionSchema+"."+migrate.RevisionTable...))
	name := "runledger_tmpl_" + hex.EncodeToString(h[:8])
	lay, err := Layout()
	if err != nil {
		return "", err
	}
	if lay == migrate.LayoutPartitioned {
		// Its partitions start at the month it was built in.
		name += "_p" + time.Now().UTC().Format("200601")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := sql.Open("postgres", server)
	if err != nil {
		return "", pgurl.ErrMalformed
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", pgurl.Describe(server), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, templateLock); err != nil {
		return "", fmt.Errorf("connect to %s: %w", pgurl.Describe(server), err)
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, templateLock) }()
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	_, _ = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(building)+" WITH (FORCE)")
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(building)); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	url, err := pgurl.WithDatabase(server, building)
	if err != nil {
		return "", err
	}
	if err := applyAll(ctx, url, dir, lay); err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s",
		pq.QuoteIdentifier(building), pq.QuoteIdentifier(name))); err != nil {
		return "", fmt.Errorf("publish template: %w", err)
	}
	return name, nil
}

func applyAll(ctx context.Context, url string, dir amigrate.Dir, lay string) error {
	d, err := sql.Open("postgres", url)
	if err != nil {
		return pgurl.ErrMalformed
	}
	defer d.Close()
	opts := migrate.ApplyOptions{}
	if lay == migrate.LayoutPartitioned {
		opts.Layout = lay
	}
	_, err = migrate.Apply(ctx, d, dir, opts)
	return err
}

// LayoutEnv names the environment variable that chooses the table layout
// of the migrated test databases: unset or "plain" for the layout the
// migrations build, "partitioned" for the opt-in partitioned layout
// (migrate.Partition), so a suite can run both ways.
const LayoutEnv = "RUNLEDGER_TEST_LAYOUT"

// Layout returns the layout New and NewURL give their databases, from
// RUNLEDGER_TEST_LAYOUT: migrate.LayoutPlain or migrate.LayoutPartitioned.
func Layout() (string, error) {
	switch v := os.Getenv(LayoutEnv); v {
	case "", migrate.LayoutPlain:
		return migrate.LayoutPlain, nil
	case migrate.LayoutPartitioned:
		return migrate.LayoutPartitioned, nil
	default:
		return "", fmt.Errorf("%s=%q: want %q or %q", LayoutEnv, v, migrate.LayoutPlain, migrate.LayoutPartitioned)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
