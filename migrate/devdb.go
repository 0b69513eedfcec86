package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/runledger/runledger/internal/pgurl"
)

// withDevDatabase creates an empty database on the server of serverURL, calls
// fn with a handle to it, and drops it afterwards, whatever fn returned.
func withDevDatabase(ctx context.Context, serverURL string, fn func(*sql.DB) error) (err error) {
	if serverURL == "" {
		serverURL = pgurl.DefaultServer
	}
	if _, err := pgurl.Parse(serverURL); err != nil {
		// lib/pq's own parse error would quote the URL, password included.
		return fmt.Errorf("migrate: dev database server: %w", err)
	}
	admin, err := sql.Open("postgres", serverURL)
	if err != nil {
		return fmt.Errorf("migrate: dev database server %s: %w", pgurl.Describe(serverURL), pgurl.ErrMalformed)
	}
	defer admin.Close()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	name := "runledger_dev_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("migrate: create dev database on %s: %w", pgurl.Describe(serverURL), err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, derr := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); derr != nil && err == nil {
			err = fmt.Errorf("migrate: drop dev database %s: %w", name, derr)
		}
	}()
	devURL, err := pgurl.WithDatabase(serverURL, name)
	if err != nil {
		return err
	}
	dev, err := sql.Open("postgres", devURL)
	if err != nil {
		return fmt.Errorf("migrate: open dev database: %w", pgurl.ErrMalformed)
	}
	defer dev.Close()
	return fn(dev)
}
