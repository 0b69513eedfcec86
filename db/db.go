// Package db opens runledger's database: a pooled, validated lib/pq
// connection wrapped in the generated ent client, with optional SQL logging
// through log/slog and a transaction helper.
//
//	d, err := db.Open(ctx, db.Config{URL: os.Getenv("DATABASE_URL")})
//	if err != nil { ... }
//	defer d.Close()
//	err = d.WithTx(ctx, func(tx *ent.Tx) error { ... })
//
// With Config.ReadURL (usually a streaming standby) Open also opens a second
// pool whose sessions are read-only; d.Reader() returns it, and the read paths
// (execution's Progress, the CLI's inspect, progress and migrate status) use
// it. OpenReplica opens such a read-only pool alone.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	_ "github.com/runledger/runledger/ent/runtime" // registers the schema hooks, interceptors and defaults
	"github.com/runledger/runledger/internal/dberr"
	"github.com/runledger/runledger/internal/pgurl"
)

// Defaults of Config.
const (
	DefaultPoolSize      = 5
	DefaultMaxOverflow   = 10
	DefaultValidateAfter = time.Second
)

// Config describes how to reach the database.
type Config struct {
	// URL is the PostgreSQL connection string (required), as a URL
	// (postgres://user:pass@host:5432/db?sslmode=disable) or lib/pq key=value pairs.
	URL string
	// PoolSize is the number of idle connections kept open (default 5).
	PoolSize int
	// MaxOverflow is how many connections may be opened beyond PoolSize under
	// load (default 10): at most PoolSize + MaxOverflow are open at once.
	MaxOverflow int
	// ValidateAfter: a pooled connection idle for longer than this is pinged
	// before reuse and replaced if dead (default 1s; negative disables).
	ValidateAfter time.Duration
	// Debug logs every SQL statement and its arguments at debug level.
	Debug bool
	// Logger receives the debug log; nil means slog.Default().
	Logger *slog.Logger
	// ReadURL, when set, is a second server (usually a streaming standby of
	// URL's primary) for the read paths: Open opens a second pool on it, of
	// the same size, whose sessions are read-only
	// (default_transaction_read_only=on from the first packet), and
	// DB.Reader returns it. Reads from it may lag the primary: see Staleness.
	ReadURL string
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, &runledger.InvalidError{Field: "URL", Reason: "a database URL is required"}
	}
	if c.PoolSize < 0 || c.MaxOverflow < 0 {
		return c, &runledger.InvalidError{Field: "PoolSize", Reason: "pool sizes cannot be negative"}
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxOverflow == 0 {
		c.MaxOverflow = DefaultMaxOverflow
	}
	if c.ValidateAfter == 0 {
		c.ValidateAfter = DefaultValidateAfter
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// DB is an open database: the ent client (embedded, so d.Run.Query() works)
// and the pool beneath it, and the read-only pool of Config.ReadURL if any.
type DB struct {
	*ent.Client
	sql      *sql.DB
	readOnly bool
	reader   *DB    // the ReadURL pool; nil without one
	url      string // for NewListener; never printed
}

// Open connects, pings, and returns the client; with Config.ReadURL it opens
// the read-only pool too. The error names the host and the database, never
// the password.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d, err := open(ctx, cfg, cfg.URL, "URL", false)
	if err != nil {
		return nil, err
	}
	if cfg.ReadURL != "" {
		if d.reader, err = open(ctx, cfg, cfg.ReadURL, "ReadURL", true); err != nil {
			_ = d.Client.Close()
			return nil, err
		}
	}
	return d, nil
}

// OpenReplica opens a read-only database on cfg.URL (a standby, or any
// server you mean only to read): every session has
// default_transaction_read_only=on, so a write fails (SQLSTATE 25006,
// read_only_sql_transaction) instead of changing anything.
// cfg.ReadURL must be empty. Its Reader is itself.
func OpenReplica(ctx context.Context, cfg Config) (*DB, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.ReadURL != "" {
		return nil, &runledger.InvalidError{Field: "ReadURL", Reason: "a replica has no read URL of its own: put its URL in URL"}
	}
	return open(ctx, cfg, cfg.URL, "URL", true)
}

// open opens one pool on url; field names the Config field in errors.
func open(ctx context.Context, cfg Config, url, field string, readOnly bool) (*DB, error) {
	where := pgurl.Describe(url)
	pqcfg, err := pq.NewConfig(url)
	if err != nil {
		// lib/pq's parse errors may quote the URL, password included.
		return nil, fmt.Errorf("db: open %s: %w", where, &runledger.InvalidError{Field: field, Reason: "malformed connection string"})
	}
	if readOnly {
		if pqcfg.Runtime == nil {
			pqcfg.Runtime = map[string]string{}
		}
		// Sent in the startup packet: no round trip, and no session of this
		// pool ever starts a read-write transaction by default.
		pqcfg.Runtime["default_transaction_read_only"] = "on"
	}
	connector, err := pq.NewConnectorConfig(pqcfg)
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", where, &runledger.InvalidError{Field: field, Reason: "malformed connection string"})
	}
	sqlDB := sql.OpenDB(&validatingConnector{Connector: connector, after: cfg.ValidateAfter})
	sqlDB.SetMaxIdleConns(cfg.PoolSize)
	sqlDB.SetMaxOpenConns(cfg.PoolSize + cfg.MaxOverflow)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("db: connect to %s: %w", where, pingError(ctx, err))
	}
	var drv dialect.Driver = entsql.OpenDB(dialect.Postgres, sqlDB)
	if cfg.Debug {
		logger := cfg.Logger
		drv = dialect.DebugWithContext(drv, func(ctx context.Context, args ...any) {
			logger.DebugContext(ctx, "sql", "statement", fmt.Sprint(args...))
		})
	}
	return &DB{Client: ent.NewClient(ent.Driver(drv)), sql: sqlDB, readOnly: readOnly, url: url}, nil
}

// Reader returns the database for reads: the read-only pool of
// Config.ReadURL when one was given, else d itself.
func (d *DB) Reader() *DB {
	if d.reader != nil {
		return d.reader
	}
	return d
}

// ReadOnly reports whether d's sessions are read-only (OpenReplica, or the
// Reader of a Config with ReadURL).
func (d *DB) ReadOnly() bool { return d.readOnly }

// Close closes the pool, and the read pool if there is one.
func (d *DB) Close() error {
	err := d.Client.Close()
	if d.reader != nil {
		err = errors.Join(err, d.reader.Close())
	}
	return err
}

// pingError keeps the cause of a failed ping but drops lib/pq's wording where
// it could echo connection parameters.
func pingError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		// A server that answered: wrong database, role or auth. Its message
		// names the database or role, never the password.
		return fmt.Errorf("%w: %s (SQLSTATE %s)", runledger.ErrUnavailable, pqErr.Message, pqErr.Code)
	}
	if t := dberr.Translate(ctx, err); dberr.Translated(t) {
		return t
	}
	return fmt.Errorf("%w: %w", runledger.ErrUnavailable, err)
}

// SQL returns the connection pool, for what the ent client cannot say (COPY).
func (d *DB) SQL() *sql.DB { return d.sql }

// WithTx runs fn in a transaction: it commits when fn returns nil, rolls back
// when fn returns an error or panics, and re-raises the panic after the
// rollback.
func (d *DB) WithTx(ctx context.Context, fn func(tx *ent.Tx) error) (err error) {
	return WithTx(ctx, d.Client, fn)
}

// WithTx runs fn in a transaction of client; see DB.WithTx.
func WithTx(ctx context.Context, client *ent.Client, fn func(tx *ent.Tx) error) (err error) {
	tx, err := client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("db: begin: %w", dberr.Translate(ctx, err))
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("db: rollback: %w", rerr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", dberr.Translate(ctx, err))
	}
	return nil
}

// NewListener opens a connection of its own for LISTEN on d's URL: lib/pq's
// Listener, which reconnects by itself (after 100 ms, backing off to 10 s)
// and reports connection events to callback (nil for none). The caller
// closes it.
func (d *DB) NewListener(callback pq.EventCallbackType) *pq.Listener {
	return pq.NewListener(d.url, 100*time.Millisecond, 10*time.Second, callback)
}
