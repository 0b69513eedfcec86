// Package dberr translates database errors into runledger's vocabulary, once,
// at the boundary: the ent hooks and interceptors of mixin.Errors, and the
// raw SQL of the execution API and the tools, all call Translate.
//
// The translated error matches a runledger sentinel with errors.Is and still
// unwraps to the driver's *pq.Error. Its message names the constraint, the
// column or the table, never a row value from the DETAIL line, a password or
// a DSN.
package dberr

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"

	"github.com/lib/pq"

	"github.com/runledger/runledger"
)

// Constraint names raised by the guards migration's triggers.
const (
	TransitionConstraint = "runledger_status_transition"
	ImmutableConstraint  = "runledger_history_immutable"
)

var vocabulary = []error{
	runledger.ErrNotFound, runledger.ErrConflict, runledger.ErrStale, runledger.ErrIllegalTransition,
	runledger.ErrImmutable, runledger.ErrInvalid, runledger.ErrUnavailable, runledger.ErrTransient,
	runledger.ErrLeaseLost,
}

// Translated reports whether err is already in the vocabulary (or is the
// context's own error), so Translate leaves it alone.
func Translated(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, v := range vocabulary {
		if errors.Is(err, v) {
			return true
		}
	}
	return false
}

// Translate maps err to the vocabulary. ctx is the context of the failed
// call: when it is done, its error is returned (still wrapping err). Errors
// it does not know are returned unchanged.
func Translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if Translated(err) {
		return err
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return fromPQ(pqErr, err)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: %w", runledger.ErrUnavailable, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", runledger.ErrUnavailable, err)
	}
	return err
}

// partitionName matches a monthly partition of the partitioned layout
// (migrate.LayoutPartitioned): its errors name the partition, which the
// caller knows as the parent table.
var partitionName = regexp.MustCompile(`^(item_execution|item_state_history)_p[0-9]{6}$`)

// tableOf returns the table an error names, a partition reported as its
// parent.
func tableOf(e *pq.Error) string {
	if m := partitionName.FindStringSubmatch(e.Table); m != nil {
		return m[1]
	}
	return e.Table
}

func fromPQ(e *pq.Error, err error) error {
	code := string(e.Code)
	switch {
	case code == "23505":
		return &runledger.ConflictError{Constraint: e.Constraint, Err: err}
	case code == "23503":
		return &runledger.InvalidError{Field: e.Constraint, Reason: "foreign key violation: the referenced row does not exist or is still referenced", Err: err}
	case code == "23514":
		return &runledger.InvalidError{Field: e.Constraint, Reason: "check constraint violated", Err: err}
	case code == "23502":
		return &runledger.InvalidError{Field: column(e), Reason: "must not be null", Err: err}
	case code == "22001":
		return &runledger.InvalidError{Field: column(e), Reason: "value too long", Err: err}
	case code == "22P02", code == "22P05", code == "22021", code == "22003", code == "22007", code == "22008", code == "22023":
		// The message of 22P02 quotes the bad value: keep only its kind.
		return &runledger.InvalidError{Field: column(e), Reason: invalidReason(code), Err: err}
	case code == "P0001" && e.Constraint == TransitionConstraint:
		from, to, _ := strings.Cut(e.Detail, " -> ")
		return &runledger.TransitionError{Table: tableOf(e), From: runledger.ExecutionStatus(from), To: runledger.ExecutionStatus(to), Err: err}
	case code == "P0001" && e.Constraint == ImmutableConstraint:
		return &immutableError{table: tableOf(e), err: err}
	case code == "40001", code == "40P01", code == "55P03":
		// Also ErrStale, as before ErrTransient existed.
		return &transientError{reason: "concurrent transaction conflict (SQLSTATE " + code + ")", stale: true, err: err}
	case code == "57014":
		// The caller's context is live (Translate checked): a statement
		// timeout, or a cancel from another session.
		return &transientError{reason: "statement cancelled or timed out (SQLSTATE 57014)", err: err}
	case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return fmt.Errorf("%w: %s (SQLSTATE %s): %w", runledger.ErrUnavailable, e.Message, code, err)
	}
	return err
}

func column(e *pq.Error) string {
	switch {
	case e.Column != "" && e.Table != "":
		return tableOf(e) + "." + e.Column
	case e.Column != "":
		return e.Column
	case e.Constraint != "":
		return e.Constraint
	}
	return tableOf(e)
}

func invalidReason(code string) string {
	switch code {
	case "22P02":
		return "invalid input syntax"
	case "22P05":
		return "untranslatable character"
	case "22021":
		return "invalid byte sequence for the encoding"
	case "22003":
		return "numeric value out of range"
	case "22007", "22008":
		return "invalid date or time"
	}
	return "invalid parameter value"
}

// immutableError is a write refused by the history's immutability guard.
type immutableError struct {
	table string
	err   error
}

func (e *immutableError) Error() string {
	return fmt.Sprintf("%s: %s rows cannot be updated or deleted", runledger.ErrImmutable, e.table)
}
func (e *immutableError) Is(target error) bool { return target == runledger.ErrImmutable }
func (e *immutableError) Unwrap() error        { return e.err }

// transientError is a failure that a retry of the call may not meet again:
// nothing was applied (the statement was refused and rolled back).
type transientError struct {
	reason string
	stale  bool // also matches runledger.ErrStale (conflicts, for compatibility)
	err    error
}

func (e *transientError) Error() string {
	return fmt.Sprintf("%s: %s: %v", runledger.ErrTransient, e.reason, e.err)
}

func (e *transientError) Is(target error) bool {
	return target == runledger.ErrTransient || (e.stale && target == runledger.ErrStale)
}
func (e *transientError) Unwrap() error { return e.err }
