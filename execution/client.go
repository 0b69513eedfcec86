package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/dberr"
)

// Options tune a Client. Zero values take the defaults.
type Options struct {
	// RetryBase is the backoff after the first failed attempt (default 1s);
	// each later attempt doubles it, up to RetryMax (default 10m), and a
	// random jitter of up to RetryJitter of it is added (default 0.2).
	RetryBase, RetryMax time.Duration
	RetryJitter         float64
	// DefaultMaxAttempts applies when StartRun is given none (default 3).
	DefaultMaxAttempts int32
	// JenkinsUnstableFails maps Jenkins' UNSTABLE result to failed instead
	// of succeeded.
	JenkinsUnstableFails bool
	// Logger receives what cannot be returned: a roll-up that failed after
	// the change it follows committed (Rescue's sweep finishes it). Default:
	// discard.
	Logger *slog.Logger
	// ChartSampleAbove: Charts samples runs with more items than this
	// (default DefaultChartSampleAbove), about ChartSampleTarget of them
	// (default DefaultChartSampleTarget).
	ChartSampleAbove, ChartSampleTarget int64
}

func (o Options) withDefaults() Options {
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Minute
	}
	if o.RetryJitter <= 0 {
		o.RetryJitter = 0.2
	}
	if o.DefaultMaxAttempts <= 0 {
		o.DefaultMaxAttempts = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ChartSampleAbove <= 0 {
		o.ChartSampleAbove = DefaultChartSampleAbove
	}
	if o.ChartSampleTarget <= 0 {
		o.ChartSampleTarget = DefaultChartSampleTarget
	}
	return o
}

// Client runs executions on a runledger database. It is safe for concurrent
// use by many goroutines and processes.
type Client struct {
	db    *db.DB
	sql   *sql.DB
	read  *db.DB // d.Reader(): the read pool of Config.ReadURL, or db
	opts  Options
	stmts sync.Map // query text -> *sql.Stmt
	// rollups shares roll-ups among concurrent reports (rollup_shared.go).
	rollups rollupGroup
}

// New returns a Client over an open database. Progress reads from
// d.Reader() (Config.ReadURL's read-only pool when given); everything else
// runs on d's primary pool.
func New(d *db.DB, opts Options) *Client {
	return &Client{db: d, sql: d.SQL(), read: d.Reader(), opts: opts.withDefaults()}
}

// Close releases the statements the Client prepared. The database stays open.
func (c *Client) Close() error {
	var errs []error
	c.stmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		c.stmts.Delete(k)
		return true
	})
	return errors.Join(errs...)
}

// prepared returns the hot-path statement for query, prepared once per
// Client (and by database/sql once per connection): PostgreSQL then plans
// it once instead of on every call, which for the claim statement is a
// sixth of its time.
func (c *Client) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := c.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, translate(ctx, err)
	}
	if prev, loaded := c.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close() //nolint:sqlclosecheck // lost the race to cache it: this copy is not used
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// query runs a prepared hot-path query.
func (c *Client) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := c.prepared(ctx, query) //nolint:sqlclosecheck // cached for the Client's life; Close releases it
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// exec runs a prepared hot-path statement.
func (c *Client) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := c.prepared(ctx, query) //nolint:sqlclosecheck // cached for the Client's life; Close releases it
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// LeaseLostError reports items a worker tried to report on (or extend)
// without holding them: another worker claimed them, or their lease ran out
// and Rescue took them back, or they finished otherwise. Those items were left
// untouched; the others in the call were applied (and are in the Report).
// It matches runledger.ErrLeaseLost: the worker should drop these items, as
// retrying cannot succeed. (A report that repeats one already applied for
// the same attempt is not lost: it is listed in Report.Replayed.)
type LeaseLostError struct {
	Worker string
	IDs    []uuid.UUID
}

// StaleWorkerError is the former name of LeaseLostError.
//
// Deprecated: use LeaseLostError; it no longer matches runledger.ErrStale.
type StaleWorkerError = LeaseLostError

// Error implements error.
func (e *LeaseLostError) Error() string {
	ids := make([]string, 0, min(len(e.IDs), 6))
	for i, id := range e.IDs {
		if i == 5 {
			ids = append(ids, "...")
			break
		}
		ids = append(ids, id.String())
	}
	return fmt.Sprintf("execution: worker %q lost the lease on %d item(s): %s", e.Worker, len(e.IDs), strings.Join(ids, ", "))
}

// Is makes errors.Is(err, runledger.ErrLeaseLost) true.
func (e *LeaseLostError) Is(target error) bool { return target == runledger.ErrLeaseLost }

// tx runs fn in a transaction on the pool, translating errors once.
func (c *Client) tx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := c.sql.BeginTx(ctx, nil)
	if err != nil {
		return dberr.Translate(ctx, err)
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return dberr.Translate(ctx, err)
	}
	return dberr.Translate(ctx, tx.Commit())
}

// each runs a query and calls scan for every row, closing the rows and
// translating the first error.
func each(ctx context.Context, rows *sql.Rows, err error, scan func(*sql.Rows) error) error {
	if err != nil {
		return translate(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return translate(ctx, err)
		}
	}
	return translate(ctx, rows.Err())
}

// queryIDs runs a query whose rows are one uuid each and returns them.
func queryIDs(ctx context.Context, q txQuerier, query string, args ...any) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	rows, err := q.QueryContext(ctx, query, args...)
	err = each(ctx, rows, err, func(rows *sql.Rows) error {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// uuidArray adapts ids for a uuid[] parameter.
func uuidArray(ids []uuid.UUID) any {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return pq.Array(s)
}

func validWorker(worker string) error {
	if worker == "" || utf8.RuneCountInString(worker) > 100 || !utf8.ValidString(worker) {
		return &runledger.InvalidError{Field: "worker", Reason: "a worker name of 1 to 100 characters is required"}
	}
	return nil
}
