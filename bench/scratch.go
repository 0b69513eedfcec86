package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/url"
	"strings"

	"github.com/lib/pq"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/migrate"
)

// scratch creates databases named runledger_bench_<random>_<purpose> on the
// server and drops them all at the end.
type scratch struct {
	server  *url.URL
	admin   *sql.DB
	prefix  string
	names   []string
	version string
	log     *log.Logger
}

func newScratch(ctx context.Context, server string, logger *log.Logger) (*scratch, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("-server: %q is not a postgres:// URL", server)
	}
	admin, err := sql.Open("postgres", server)
	if err != nil {
		return nil, err
	}
	s := &scratch{server: u, admin: admin, log: logger}
	if err := admin.QueryRowContext(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&s.version); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	var buf [4]byte
	_, _ = rand.Read(buf[:])
	s.prefix = "runledger_bench_" + hex.EncodeToString(buf[:])
	return s, nil
}

// dbName is the name of the scratch database for purpose.
func (s *scratch) dbName(purpose string) string { return s.prefix + "_" + purpose }

// create makes an empty database for purpose and returns its URL.
func (s *scratch) create(ctx context.Context, purpose string) (string, error) {
	name := s.dbName(purpose)
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	s.names = append(s.names, name)
	s.log.Printf("   created database %s", name)
	u := *s.server
	u.Path = "/" + name
	return u.String(), nil
}

// runledger creates a database for purpose, migrated with runledger's
// embedded migrations, and opens it with a pool of poolSize connections
// (twice that under load).
func (s *scratch) runledger(ctx context.Context, purpose string, poolSize int) (*db.DB, string, error) {
	dsn, err := s.create(ctx, purpose)
	if err != nil {
		return nil, "", err
	}
	d, err := db.Open(ctx, db.Config{URL: dsn, PoolSize: poolSize, MaxOverflow: poolSize})
	if err != nil {
		return nil, "", err
	}
	dir, err := migrate.Embedded()
	if err == nil {
		_, err = migrate.Apply(ctx, d.SQL(), dir, migrate.ApplyOptions{})
	}
	if err != nil {
		d.Close()
		return nil, "", fmt.Errorf("migrate %s: %w", purpose, err)
	}
	return d, dsn, nil
}

// plain creates a database for purpose and opens it with database/sql.
func (s *scratch) plain(ctx context.Context, purpose string, maxConns int) (*sql.DB, error) {
	dsn, err := s.create(ctx, purpose)
	if err != nil {
		return nil, err
	}
	d, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	d.SetMaxOpenConns(maxConns)
	d.SetMaxIdleConns(maxConns)
	return d, nil
}

// dropAll drops every database created (terminating leftover connections).
func (s *scratch) dropAll(ctx context.Context) error {
	var errs []error
	for _, name := range s.names {
		if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", name, err))
		}
	}
	if len(s.names) > 0 {
		s.log.Printf("dropped %d scratch databases %s_*", len(s.names), s.prefix)
	}
	s.names = nil
	return errors.Join(append(errs, s.close())...)
}

func (s *scratch) close() error { return s.admin.Close() }

// truncate empties tables of a runledger database (CASCADE). History refuses
// TRUNCATE by trigger, so the trigger is switched off for the statement.
func truncate(ctx context.Context, d *sql.DB, tables ...string) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	for _, stmt := range []string{
		`ALTER TABLE item_state_history DISABLE TRIGGER item_state_history_no_truncate`,
		`TRUNCATE ` + strings.Join(tables, ", ") + ` CASCADE`,
		`ALTER TABLE item_state_history ENABLE TRIGGER item_state_history_no_truncate`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("truncate %v: %w", tables, err)
		}
	}
	return tx.Commit()
}

// analyze refreshes the planner's statistics, as autovacuum would soon
// after a bulk load: every figure is taken on analyzed tables.
func analyze(ctx context.Context, d *sql.DB) error {
	_, err := d.ExecContext(ctx, `ANALYZE`)
	return err
}
