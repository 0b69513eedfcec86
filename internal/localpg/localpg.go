// Package localpg finds the PostgreSQL server that runledger's tools and
// tests use when none is configured: the local server at 127.0.0.1:5432 if
// one answers, else (zero-setup start) a private server started from the
// installed PostgreSQL binaries (internal/pgserver) for as long as the
// process lives. Under CI (CI=true) a missing server is an error instead:
// CI must provide its database, and a silent private one would hide that.
package localpg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/internal/pgurl"
)

// DefaultServerEnv overrides the local server's URL (default
// pgurl.DefaultServer). Tests point it at a closed port to prove the
// zero-setup start.
const DefaultServerEnv = "RUNLEDGER_DEFAULT_SERVER"

// Options says where to look and what to do when nothing answers.
type Options struct {
	// Default is the server to use when it answers. Empty: pgurl.DefaultServer.
	Default string
	// CI refuses to start a private server.
	CI bool
	// Say, when set, receives the one line that tells a private server was
	// started.
	Say func(line string)
}

// OptionsFromEnv reads DefaultServerEnv and CI through getenv.
func OptionsFromEnv(getenv func(string) string, say func(string)) Options {
	return Options{Default: getenv(DefaultServerEnv), CI: getenv("CI") == "true", Say: say}
}

// Server is the server Ensure found or started.
type Server struct {
	URL     string // a URL of its postgres database, user root
	Private bool   // started by Ensure; Close stops and removes it
	private *pgserver.Server
}

// Close stops and removes a private server; it does nothing for the local
// one. If the process dies first, pgserver's watcher does the same.
func (s *Server) Close() error {
	if s == nil || s.private == nil {
		return nil
	}
	return s.private.Close()
}

// ErrNoServer is returned under CI when no server answers.
var ErrNoServer = errors.New("localpg: no PostgreSQL server answers")

// Ensure returns the default server if it answers, else a private server it
// starts (unless opts.CI).
func Ensure(ctx context.Context, opts Options) (*Server, error) {
	def := opts.Default
	if def == "" {
		def = pgurl.DefaultServer
	}
	if answers(ctx, def) {
		return &Server{URL: def}, nil
	}
	where := pgurl.Describe(def)
	if info, err := pgurl.Parse(def); err == nil && info.Host != "" {
		where = net.JoinHostPort(info.Host, cmp.Or(info.Port, "5432"))
	}
	if opts.CI {
		return nil, fmt.Errorf("%w at %s and CI=true: CI starts its own (see .ci/run); set DATABASE_URL or TEST_DATABASE_URL to use another", ErrNoServer, where)
	}
	s, err := pgserver.Start(ctx, pgserver.Options{Settings: map[string]string{
		"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200",
	}})
	if err != nil {
		if errors.Is(err, pgserver.ErrNoBinaries) {
			return nil, fmt.Errorf("%w at %s, and no PostgreSQL is installed to start a private one: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL: %w", ErrNoServer, where, err)
		}
		return nil, fmt.Errorf("localpg: no PostgreSQL at %s; starting a private server: %w", where, err)
	}
	if opts.Say != nil {
		opts.Say(fmt.Sprintf("no PostgreSQL at %s: started a private server on 127.0.0.1:%d (removed when this process ends)", where, s.Port()))
	}
	return &Server{URL: s.URL("postgres"), Private: true, private: s}, nil
}

// answers reports whether something accepts TCP connections at the
// connection string's host and port (a unix socket, no host or a string too
// malformed to read count as answering: the connection itself will tell).
func answers(ctx context.Context, dsn string) bool {
	info, err := pgurl.Parse(dsn)
	if err != nil || info.Host == "" || strings.HasPrefix(info.Host, "/") {
		return true
	}
	host, port := info.Host, cmp.Or(info.Port, "5432")
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
