package localpg_test

import (
	"context"
	"database/sql"
	"net"
	"net/url"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/localpg"
	"github.com/runledger/runledger/internal/pgurl"
)

// closedPort is a default server nothing listens on.
const closedPort = "postgres://root@127.0.0.1:1/postgres?sslmode=disable"

func TestEnsureUsesTheServerThatAnswers(t *testing.T) {
	t.Parallel()
	srv, err := localpg.Ensure(context.Background(), localpg.Options{Default: pgurl.DefaultServer})
	require.NoError(t, err)
	require.False(t, srv.Private)
	require.Equal(t, pgurl.DefaultServer, srv.URL)
	require.NoError(t, srv.Close())
}

func TestEnsureStartsAPrivateServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var said []string
	srv, err := localpg.Ensure(ctx, localpg.Options{Default: closedPort, Say: func(l string) { said = append(said, l) }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.True(t, srv.Private)
	require.Len(t, said, 1, "one line says so")
	require.Contains(t, said[0], "no PostgreSQL at 127.0.0.1:1: started a private server on 127.0.0.1:")

	d, err := sql.Open("postgres", srv.URL)
	require.NoError(t, err)
	var one int
	require.NoError(t, d.QueryRowContext(ctx, `SELECT 1`).Scan(&one))
	require.NoError(t, d.Close())

	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	_, err = net.DialTimeout("tcp", u.Host, time.Second)
	require.Error(t, err, "Close stopped the server")
}

func TestEnsureUnderCIFailsLoudly(t *testing.T) {
	t.Parallel()
	_, err := localpg.Ensure(context.Background(), localpg.Options{Default: closedPort, CI: true})
	require.ErrorIs(t, err, localpg.ErrNoServer)
	require.Contains(t, err.Error(), "CI=true")
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{localpg.DefaultServerEnv: closedPort, "CI": "true"}
	o := localpg.OptionsFromEnv(func(k string) string { return env[k] }, nil)
	require.Equal(t, closedPort, o.Default)
	require.True(t, o.CI)
}
