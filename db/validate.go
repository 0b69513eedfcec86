package db

import (
	"context"
	"database/sql/driver"
	"sync/atomic"
	"time"
)

// validatingConnector hands out connections that ping themselves before
// reuse when they have been idle for longer than after: the pool_pre_ping of
// the specification, without a round trip on every checkout of a busy pool.
type validatingConnector struct {
	driver.Connector
	after time.Duration
}

// Connect implements driver.Connector.
func (c *validatingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	vc := &validatingConn{Conn: conn, after: c.after}
	vc.lastUse.Store(time.Now().UnixNano())
	return vc, nil
}

// validatingConn forwards everything lib/pq's connection offers and adds the
// ping in ResetSession, which database/sql calls before a pooled connection
// is reused. A failed ping returns driver.ErrBadConn: the pool drops the
// connection and opens another.
type validatingConn struct {
	driver.Conn
	after   time.Duration
	lastUse atomic.Int64
}

var (
	_ driver.ConnBeginTx        = (*validatingConn)(nil)
	_ driver.ConnPrepareContext = (*validatingConn)(nil)
	_ driver.ExecerContext      = (*validatingConn)(nil)
	_ driver.QueryerContext     = (*validatingConn)(nil)
	_ driver.Pinger             = (*validatingConn)(nil)
	_ driver.SessionResetter    = (*validatingConn)(nil)
	_ driver.Validator          = (*validatingConn)(nil)
	_ driver.NamedValueChecker  = (*validatingConn)(nil)
)

// ResetSession implements driver.SessionResetter.
func (c *validatingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		if err := r.ResetSession(ctx); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	idle := time.Duration(now - c.lastUse.Swap(now))
	if c.after >= 0 && idle > c.after {
		if err := c.Ping(ctx); err != nil {
			return driver.ErrBadConn
		}
	}
	return nil
}

// IsValid implements driver.Validator.
func (c *validatingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Ping implements driver.Pinger.
func (c *validatingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// BeginTx implements driver.ConnBeginTx.
func (c *validatingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// PrepareContext implements driver.ConnPrepareContext.
func (c *validatingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

// ExecContext implements driver.ExecerContext.
func (c *validatingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

// QueryContext implements driver.QueryerContext.
func (c *validatingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

// CheckNamedValue implements driver.NamedValueChecker.
func (c *validatingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}
