package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/web"
)

// shutdownGrace is how long serve waits for requests to finish on exit.
const shutdownGrace = 5 * time.Second

func newServeCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the dashboard and JSON API: runs live, failures, cancel and retry",
		Long: `serve runs the dashboard (docs/dashboard.md) and its JSON API (docs/api.md).

It binds 127.0.0.1:8080 by default; there, reads need no token and only
loopback host names are answered. Bound to any other address it refuses to
start without a token (--token or RUNLEDGER_TOKEN), and every request needs
it. Actions always need it: Authorization: Bearer TOKEN for the API; for
the pages, open the URL printed at start once (a session cookie). Without
--token on loopback a random token is made and printed.`,
		Example: "  runledger serve\n  RUNLEDGER_TOKEN=s3cret runledger serve --addr 0.0.0.0:8080 --read-url postgres://standby/runledger",
		Args:    exactArgs(),
	}
	url := addURLFlag(cmd)
	readURLFlag := cmd.Flags().String("read-url", "", "read from this server instead, read-only: a standby (default $DATABASE_READ_URL unless --url is given); actions still go to --url")
	addr := cmd.Flags().String("addr", "127.0.0.1:8080", "address to listen on")
	token := cmd.Flags().String("token", "", "secret for actions, and for reads off loopback (default $RUNLEDGER_TOKEN; random on loopback)")
	actor := cmd.Flags().String("actor", web.DefaultActor, "acting user recorded for the dashboard's actions")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		tok := *token
		if tok == "" {
			tok = env.Getenv("RUNLEDGER_TOKEN")
		}
		u, err := databaseURL(env, *url)
		if err != nil {
			return err
		}
		ru := readURL(env, *url, *readURLFlag)
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", *addr, err)
		}
		defer func() { _ = ln.Close() }()
		loopback := isLoopback(ln.Addr())
		if tok == "" {
			if !loopback {
				return usageErrorf("refusing to serve on %s (not loopback) without a token: pass --token or set RUNLEDGER_TOKEN", ln.Addr())
			}
			tok = randomToken()
		}
		d, err := db.Open(ctx, db.Config{URL: u, ReadURL: ru})
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		x := execution.New(d, execution.Options{Logger: env.Logger})
		defer func() { _ = x.Close() }()
		srv, err := web.New(web.Config{Read: x, Write: x, Token: tok, Loopback: loopback, Actor: *actor, Logger: env.Logger})
		if err != nil {
			return err
		}
		defer srv.Close()
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		fmt.Fprintf(env.Stdout, "runledger dashboard: http://%s/?token=%s\n", ln.Addr(), tok)
		if loopback {
			fmt.Fprintln(env.Stdout, "(loopback: reads need no token; actions need the session that URL opens)")
		}
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		srv.Close() // ends the event streams, so Shutdown does not wait for them
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
	return cmd
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
