// Package db opens runledger's database: a pooled, validated lib/pq
// connection wrapped in the generated ent client, with optional SQL logging
// through log/slog and a transaction helper.
//
//	d, err := db.Open(ctx, db.Config{URL: os.Getenv("DATABASE_URL")})
//	if err != nil { ... }
//	defer d.Close()
//	err = d.WithTx(ctx, func(tx *ent.Tx) error { ... })
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
// and the pool beneath it.
type DB struct {
	*ent.Client
	sql *sql.DB
}

// Open connects, pings, and returns the client. The error names the host and
// the database, never the password.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	where := pgurl.Describe(cfg.URL)
	connector, err := pq.NewConnector(cfg.URL)
	if err != nil {
		// lib/pq's parse errors may quote the URL, password included.
		return nil, fmt.Errorf("db: open %s: %w", where, &runledger.InvalidError{Field: "URL", Reason: "malformed connection string"})
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
	return &DB{Client: ent.NewClient(ent.Driver(drv)), sql: sqlDB}, nil
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
