package runledger

import (
	"errors"
	"fmt"
)

// The error vocabulary of runledger. Every error returned by the client, the
// execution API and the migration tooling that concerns the data matches one
// of these with errors.Is; the typed errors below carry the details and still
// unwrap to the driver error that caused them.
var (
	// ErrNotFound: the row does not exist (or is soft-deleted and hidden).
	ErrNotFound = errors.New("runledger: not found")
	// ErrConflict: a unique constraint refused the write. See ConflictError.
	ErrConflict = errors.New("runledger: conflict")
	// ErrStale: an optimistic-lock update lost the race; re-read and retry.
	ErrStale = errors.New("runledger: stale version")
	// ErrIllegalTransition: the status change is not in the transition table.
	// See TransitionError.
	ErrIllegalTransition = errors.New("runledger: illegal status transition")
	// ErrImmutable: the row may not be changed or deleted (state history).
	ErrImmutable = errors.New("runledger: immutable")
	// ErrInvalid: a value was refused (check, not-null, bad input, schema
	// validation). See InvalidError.
	ErrInvalid = errors.New("runledger: invalid")
	// ErrUnavailable: the database could not be reached, or the connection
	// was lost. When it was lost after a statement was sent, the outcome is
	// unknown: the change may or may not have committed. Retrying the same
	// call is safe (the execution API's reports are idempotent, see package
	// execution). Every ErrUnavailable also matches ErrTransient.
	ErrUnavailable error = &sentinel{msg: "runledger: database unavailable", also: []error{ErrTransient}}
	// ErrTransient: the call failed for a reason that goes away by itself;
	// retry the call (after a short backoff). Nothing was applied, unless the
	// error is also ErrUnavailable (outcome unknown, still safe to retry).
	// Lock timeouts (55P03), serialization failures (40001), deadlocks
	// (40P01), statement timeouts (57014 while the caller's context is live),
	// connection loss and unknown outcomes match it.
	ErrTransient = errors.New("runledger: transient failure, retry the call")
	// ErrLeaseLost: the worker no longer holds the item (another worker or
	// Rescue took it over, or it finished otherwise). Retrying is pointless:
	// drop the item. See execution.LeaseLostError.
	ErrLeaseLost = errors.New("runledger: lease lost")
)

// sentinel is a sentinel error that also matches other sentinels: a more
// specific condition that belongs to a broader class.
type sentinel struct {
	msg  string
	also []error
}

func (s *sentinel) Error() string { return s.msg }

// Is makes errors.Is match the broader sentinels too.
func (s *sentinel) Is(target error) bool {
	for _, e := range s.also {
		if target == e {
			return true
		}
	}
	return false
}

// ConflictError reports a unique-constraint violation.
type ConflictError struct {
	Constraint string // the constraint or index name, when known
	Err        error  // the driver error
}

// Error implements error. It names the constraint and never the row values.
func (e *ConflictError) Error() string {
	if e.Constraint == "" {
		return ErrConflict.Error()
	}
	return fmt.Sprintf("%s: unique constraint %q", ErrConflict, e.Constraint)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Unwrap returns the driver error.
func (e *ConflictError) Unwrap() error { return e.Err }

// InvalidError reports a refused value.
type InvalidError struct {
	Field  string // the column, constraint or JSON pointer at fault
	Reason string // a short explanation without row values
	Err    error  // the underlying error, if any
}

// Error implements error.
func (e *InvalidError) Error() string {
	msg := ErrInvalid.Error()
	if e.Field != "" {
		msg += ": " + e.Field
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying error.
func (e *InvalidError) Unwrap() error { return e.Err }

// TransitionError reports a status change that the transition table forbids.
type TransitionError struct {
	Table    string
	From, To ExecutionStatus
	Err      error // the driver error, when the database refused it
}

// Error implements error.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s: %s: %s -> %s", ErrIllegalTransition, e.Table, e.From, e.To)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// Unwrap returns the driver error.
func (e *TransitionError) Unwrap() error { return e.Err }

// StaleError reports an optimistic-lock update that found the row changed.
type StaleError struct {
	Table   string
	ID      string
	Version int32 // the version the caller read
}

// Error implements error.
func (e *StaleError) Error() string {
	return fmt.Sprintf("%s: %s %s was changed or deleted since version %d was read", ErrStale, e.Table, e.ID, e.Version)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }
