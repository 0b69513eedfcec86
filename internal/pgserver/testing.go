package pgserver

import (
	"context"
	"testing"
)

// ForTest starts a private server for t and closes it when t ends. It fails
// the test (never skips) when no server can be started.
func ForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Logf("pgserver: close: %v", err)
		}
	})
	return s
}
