package runledger

import "fmt"

// ExecutionStatus is the lifecycle state of a run, a batch execution, an item
// execution or an orchestration instance. It is stored as text and the database
// rejects any value outside the constants below.
type ExecutionStatus string

// The values of ExecutionStatus. See CanTransition for the moves between them.
const (
	StatusPending   ExecutionStatus = "pending"
	StatusQueued    ExecutionStatus = "queued"
	StatusScheduled ExecutionStatus = "scheduled"
	StatusRunning   ExecutionStatus = "running"
	StatusRetrying  ExecutionStatus = "retrying"
	StatusSucceeded ExecutionStatus = "succeeded"
	StatusFailed    ExecutionStatus = "failed"
	StatusCancelled ExecutionStatus = "cancelled"
	StatusTimedOut  ExecutionStatus = "timed_out"
	StatusSkipped   ExecutionStatus = "skipped"
)

// AllStatuses lists every ExecutionStatus in lifecycle order.
var AllStatuses = []ExecutionStatus{
	StatusPending, StatusQueued, StatusScheduled, StatusRunning, StatusRetrying,
	StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped,
}

// Values returns the status names as strings; ent uses it to declare the enum.
func (ExecutionStatus) Values() []string {
	out := make([]string, len(AllStatuses))
	for i, s := range AllStatuses {
		out[i] = string(s)
	}
	return out
}

// String returns the status name.
func (s ExecutionStatus) String() string { return string(s) }

// Valid reports whether s is one of the declared statuses.
func (s ExecutionStatus) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Terminal reports whether s ends an execution: succeeded, failed, cancelled,
// timed_out or skipped. finished_at is set exactly in these states.
func (s ExecutionStatus) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped:
		return true
	}
	return false
}

// ParseStatus returns the ExecutionStatus named s, or an error wrapping ErrInvalid.
func ParseStatus(s string) (ExecutionStatus, error) {
	st := ExecutionStatus(s)
	if !st.Valid() {
		return "", &InvalidError{Field: "status", Reason: fmt.Sprintf("unknown status %q", s)}
	}
	return st, nil
}

var terminals = []ExecutionStatus{StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped}

// transitions is the single source of truth for legal status changes. The
// database guard (migrate/migrations) is tested against it pair by pair.
var transitions = map[ExecutionStatus][]ExecutionStatus{
	StatusPending:   {StatusQueued, StatusScheduled, StatusRunning, StatusRetrying, StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped},
	StatusQueued:    append([]ExecutionStatus{StatusScheduled, StatusRunning}, terminals...),
	StatusScheduled: append([]ExecutionStatus{StatusQueued, StatusRunning}, terminals...),
	StatusRunning:   append([]ExecutionStatus{StatusRetrying, StatusScheduled}, terminals...),
	StatusRetrying:  append([]ExecutionStatus{StatusQueued, StatusScheduled, StatusRunning}, terminals...),
	StatusFailed:    {StatusQueued},
	StatusTimedOut:  {StatusQueued},
	StatusCancelled: {StatusQueued},
	StatusSucceeded: nil,
	StatusSkipped:   nil,
}

// CanTransition reports whether a status may change from one value to another.
// Setting the same status again is not a transition and is always allowed for
// a valid status; an unknown status can neither be left nor entered.
func CanTransition(from, to ExecutionStatus) bool {
	next, ok := transitions[from]
	if !ok || !to.Valid() {
		return false
	}
	if from == to {
		return true
	}
	for _, s := range next {
		if s == to {
			return true
		}
	}
	return false
}

// Successors returns the statuses that from may move to, in lifecycle order,
// not counting from itself.
func Successors(from ExecutionStatus) []ExecutionStatus {
	var out []ExecutionStatus
	for _, s := range AllStatuses {
		if s != from && CanTransition(from, s) {
			out = append(out, s)
		}
	}
	return out
}
