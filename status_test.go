package runledger_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
)

func TestTerminal(t *testing.T) {
	t.Parallel()
	want := map[runledger.ExecutionStatus]bool{
		runledger.StatusSucceeded: true, runledger.StatusFailed: true, runledger.StatusCancelled: true,
		runledger.StatusTimedOut: true, runledger.StatusSkipped: true,
	}
	for _, s := range runledger.AllStatuses {
		require.Equal(t, want[s], s.Terminal(), s)
	}
	require.Len(t, runledger.AllStatuses, 10)
}

func TestCanTransition(t *testing.T) {
	t.Parallel()
	s := func(names ...runledger.ExecutionStatus) []runledger.ExecutionStatus { return names }
	terminal := s(runledger.StatusSucceeded, runledger.StatusFailed, runledger.StatusCancelled, runledger.StatusTimedOut, runledger.StatusSkipped)
	tests := []struct {
		from runledger.ExecutionStatus
		to   []runledger.ExecutionStatus
	}{
		{runledger.StatusPending, append(s(runledger.StatusQueued, runledger.StatusScheduled, runledger.StatusRunning, runledger.StatusRetrying), terminal...)},
		{runledger.StatusQueued, append(s(runledger.StatusScheduled, runledger.StatusRunning), terminal...)},
		{runledger.StatusScheduled, append(s(runledger.StatusQueued, runledger.StatusRunning), terminal...)},
		{runledger.StatusRunning, append(s(runledger.StatusScheduled, runledger.StatusRetrying), terminal...)},
		{runledger.StatusRetrying, append(s(runledger.StatusQueued, runledger.StatusScheduled, runledger.StatusRunning), terminal...)},
		{runledger.StatusFailed, s(runledger.StatusQueued)},
		{runledger.StatusTimedOut, s(runledger.StatusQueued)},
		{runledger.StatusCancelled, s(runledger.StatusQueued)},
		{runledger.StatusSucceeded, nil},
		{runledger.StatusSkipped, nil},
	}
	require.Len(t, tests, len(runledger.AllStatuses))
	for _, tt := range tests {
		t.Run(string(tt.from), func(t *testing.T) {
			t.Parallel()
			allowed := map[runledger.ExecutionStatus]bool{tt.from: true} // same status: not a transition, allowed
			for _, to := range tt.to {
				allowed[to] = true
			}
			for _, to := range runledger.AllStatuses {
				require.Equal(t, allowed[to], runledger.CanTransition(tt.from, to), "%s -> %s", tt.from, to)
			}
			require.ElementsMatch(t, tt.to, runledger.Successors(tt.from))
		})
	}
	require.False(t, runledger.CanTransition("bogus", runledger.StatusQueued))
	require.False(t, runledger.CanTransition(runledger.StatusQueued, "bogus"))
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	st, err := runledger.ParseStatus("timed_out")
	require.NoError(t, err)
	require.Equal(t, runledger.StatusTimedOut, st)
	_, err = runledger.ParseStatus("done")
	require.ErrorIs(t, err, runledger.ErrInvalid)
}

func TestTypedErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("driver")
	tests := []struct {
		err      error
		sentinel error
		msg      string
	}{
		{&runledger.ConflictError{Constraint: "ix_automation_name_active", Err: cause}, runledger.ErrConflict, `runledger: conflict: unique constraint "ix_automation_name_active"`},
		{&runledger.InvalidError{Field: "attempt_count", Reason: "must be >= 0", Err: cause}, runledger.ErrInvalid, "runledger: invalid: attempt_count: must be >= 0"},
		{&runledger.TransitionError{Table: "run", From: "succeeded", To: "running", Err: cause}, runledger.ErrIllegalTransition, "runledger: illegal status transition: run: succeeded -> running"},
		{&runledger.StaleError{Table: "Run", ID: "x", Version: 3}, runledger.ErrStale, "runledger: stale version: Run x was changed or deleted since version 3 was read"},
	}
	for _, tt := range tests {
		require.ErrorIs(t, tt.err, tt.sentinel)
		require.Equal(t, tt.msg, tt.err.Error())
		if u, ok := tt.err.(interface{ Unwrap() error }); ok {
			require.ErrorIs(t, u.Unwrap(), cause)
		}
	}
}
