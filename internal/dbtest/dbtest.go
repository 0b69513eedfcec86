// Package dbtest gives each of runledger's own tests a fresh database cloned
// from a template that the real migration files built. It is the exported
// runledgertest package under the name the project's tests have always used.
package dbtest

import (
	"testing"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/migrate"
	"github.com/runledger/runledger/runledgertest"
)

// ServerURL returns the URL of the server tests run against.
func ServerURL() string { return runledgertest.ServerURL() }

// New returns a client on a fresh, migrated database that is dropped when
// the test ends.
func New(t testing.TB) *db.DB { t.Helper(); return runledgertest.New(t) }

// NewURL creates a fresh, migrated database and returns its URL; it is
// dropped when the test ends.
func NewURL(t testing.TB) string { t.Helper(); return runledgertest.NewURL(t) }

// EmptyURL creates an empty database (no migrations applied) and returns its
// URL; it is dropped when the test ends.
func EmptyURL(t testing.TB) string { t.Helper(); return runledgertest.EmptyURL(t) }

// Partitioned reports whether the test databases have the partitioned
// layout (RUNLEDGER_TEST_LAYOUT=partitioned): tests of what the layout
// changes by design branch on it.
func Partitioned() bool {
	l, _ := runledgertest.Layout()
	return l == migrate.LayoutPartitioned
}
