package execution

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runledger/runledger/internal/payload"
)

// Handler processes one claimed item. Its context ends when the item's run
// is cancelled (cause ErrRunCancelled), when HandlerOptions.Timeout passes
// (ErrHandlerTimeout), when the Runner's Stop gives up waiting
// (ErrRunnerStopped) or when the item's lease is lost (runledger.ErrLeaseLost);
// context.Cause tells which. A nil error completes the item with the returned
// payload (nil for none; it must be valid JSON); an error fails it, to be
// retried by the automation's policy unless wrapped with NonRetryable; a
// panic is recovered and fails it (retryable) with the panic and its stack.
type Handler interface {
	Handle(ctx context.Context, item Claimed) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, item Claimed) (json.RawMessage, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, item Claimed) (json.RawMessage, error) {
	return f(ctx, item)
}

// HandlerOptions tune one automation's handler.
type HandlerOptions struct {
	// Concurrency is the most items of the automation one Runner processes
	// at once (default 10). While the handlers return faster than a claim
	// takes, the Runner also holds up to Concurrency items claimed ahead,
	// waiting for a slot (see Runner).
	Concurrency int
	// Timeout bounds one call of the handler (0: none). A handler that
	// runs out of time fails the item (retryable).
	Timeout time.Duration
}

// Causes of a handler context's end (context.Cause).
var (
	// ErrRunCancelled: the item's run was cancelled (CancelRun). Whatever
	// the handler returns then, the item ends cancelled.
	ErrRunCancelled = errors.New("execution: run cancelled")
	// ErrHandlerTimeout: HandlerOptions.Timeout passed.
	ErrHandlerTimeout = errors.New("execution: handler timed out")
	// ErrRunnerStopped: Runner.Stop's context ended before the handler
	// returned. The item is handed back (Client.Release).
	ErrRunnerStopped = errors.New("execution: runner stopped")
)

// nonRetryable marks an error that fails an item for good.
type nonRetryable struct{ err error }

func (e *nonRetryable) Error() string { return e.err.Error() }
func (e *nonRetryable) Unwrap() error { return e.err }

// NonRetryable wraps err so that the item it fails is failed for good,
// whatever attempts remain. NonRetryable(nil) is nil.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryable{err: err}
}

// IsNonRetryable reports whether err was wrapped with NonRetryable.
func IsNonRetryable(err error) bool {
	var nr *nonRetryable
	return errors.As(err, &nr)
}

// PanicError is a handler's recovered panic. The item fails (retryable) with
// its text, which includes the stack.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the goroutine's stack at the panic
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}

// Workers holds the handlers a Runner runs, one per automation name. Register
// them before NewRunner; a Runner takes a copy.
type Workers struct {
	mu         sync.Mutex
	handlers   map[string]registered
	order      []string
	middleware []func(Handler) Handler
}

type registered struct {
	h    Handler
	opts HandlerOptions
}

// NewWorkers returns an empty set of handlers.
func NewWorkers() *Workers { return &Workers{handlers: map[string]registered{}} }

// Handle registers h for the items of the automations named automation
// (every automation of that name, active or not). Registering a name again
// replaces its handler.
func (ws *Workers) Handle(automation string, h Handler, opts HandlerOptions) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 10
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if _, ok := ws.handlers[automation]; !ok {
		ws.order = append(ws.order, automation)
	}
	ws.handlers[automation] = registered{h: h, opts: opts}
}

// Use adds middleware around every handler (tracing, metrics, logging): the
// first added is the outermost.
func (ws *Workers) Use(mw func(Handler) Handler) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.middleware = append(ws.middleware, mw)
}

// snapshot returns the handlers with their middleware applied, in
// registration order.
func (ws *Workers) snapshot() ([]string, map[string]registered) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make(map[string]registered, len(ws.handlers))
	for name, r := range ws.handlers {
		h := r.h
		for i := len(ws.middleware) - 1; i >= 0; i-- {
			h = ws.middleware[i](h)
		}
		out[name] = registered{h: h, opts: r.opts}
	}
	return append([]string(nil), ws.order...), out
}

// checkResult checks a handler's result by Complete's own rules before it
// joins a batch: one bad payload must not fail the whole Complete statement.
func checkResult(p json.RawMessage) error {
	if len(p) == 0 {
		return nil
	}
	return payload.CheckRaw(func() string { return "handler result" }, p)
}

// failureText is what an item's error_message records for err (for a panic,
// its value and stack), made acceptable to Fail: valid UTF-8 without NUL
// characters, so that one odd error text cannot fail the whole Fail batch.
func failureText(err error) string {
	return strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "\uFFFD")
}
