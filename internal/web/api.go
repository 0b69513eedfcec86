package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

// errorBody is every API error: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // JSON with nosniff is never read as HTML
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// statusOf maps an error of the execution API to an HTTP status and a
// message that is safe to show: the vocabulary's messages carry no row
// values, DSN or password; anything else is an internal error whose
// details go only to the log.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, runledger.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, runledger.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, runledger.ErrUnavailable):
		return http.StatusServiceUnavailable, "the database is unavailable; try again"
	case errors.Is(err, runledger.ErrTransient), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "a transient database failure; try again"
	case errors.Is(err, runledger.ErrIllegalTransition), errors.Is(err, runledger.ErrConflict),
		errors.Is(err, runledger.ErrStale), errors.Is(err, runledger.ErrLeaseLost):
		return http.StatusConflict, err.Error()
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "request cancelled"
	}
	return http.StatusInternalServerError, "internal error"
}

func (s *Server) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	if code >= 500 && !errors.Is(err, context.Canceled) {
		s.cfg.Logger.ErrorContext(r.Context(), "dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, msg)
}

// pathID reads the {id} of the path. A malformed UUID cannot name anything:
// it is a 404, like an unknown one.
func pathID(r *http.Request) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	return id, err == nil
}

func notFoundID(r *http.Request) error {
	return fmt.Errorf("%w: %q is not an id", runledger.ErrNotFound, r.PathValue("id"))
}

// statuses reads repeated or comma-separated ?status= values.
func statuses(r *http.Request) ([]runledger.ExecutionStatus, error) {
	var out []runledger.ExecutionStatus
	for _, v := range r.URL.Query()["status"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			st, err := runledger.ParseStatus(name)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func limit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > execution.MaxPageSize {
		return 0, &runledger.InvalidError{Field: "limit", Reason: fmt.Sprintf("a number from 1 to %d", execution.MaxPageSize)}
	}
	return n, nil
}

func runFilter(r *http.Request) (execution.RunFilter, error) {
	q := r.URL.Query()
	st, err := statuses(r)
	if err != nil {
		return execution.RunFilter{}, err
	}
	n, err := limit(r)
	if err != nil {
		return execution.RunFilter{}, err
	}
	return execution.RunFilter{Statuses: st, Automation: strings.TrimSpace(q.Get("automation")),
		CorrelationID: strings.TrimSpace(q.Get("correlation_id")), After: q.Get("after"), Limit: n}, nil
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	f, err := runFilter(r)
	if err != nil {
		s.apiFail(w, r, err)
		return
	}
	page, err := s.cfg.Read.ListRuns(r.Context(), f)
	if err != nil {
		s.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) apiAutomations(w http.ResponseWriter, r *http.Request) {
	n, err := limit(r)
	if err != nil {
		s.apiFail(w, r, err)
		return
	}
	q := r.URL.Query()
	latest := 0
	if v := q.Get("latest_runs"); v != "" {
		if latest, err = strconv.Atoi(v); err != nil {
			s.apiFail(w, r, &runledger.InvalidError{Field: "latest_runs", Reason: "a number from 1 to 20"})
			return
		}
	}
	page, err := s.cfg.Read.ListAutomations(r.Context(), execution.AutomationFilter{
		Inactive: truthy(q.Get("inactive")), LatestRuns: latest, After: q.Get("after"), Limit: n})
	if err != nil {
		s.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "on", "yes":
		return true
	}
	return false
}

// withID runs fn with the path's id, or answers 404 for a malformed one.
func (s *Server) withID(fn func(w http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(r)
		if !ok {
			s.apiFail(w, r, notFoundID(r))
			return
		}
		v, err := fn(w, r, id)
		if err != nil {
			s.apiFail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		return s.cfg.Read.RunDetail(r.Context(), id)
	})(w, r)
}

func (s *Server) apiProgress(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		p, err := s.cfg.Read.Progress(r.Context(), id)
		if err != nil {
			return nil, err
		}
		return report.NewProgress(p), nil
	})(w, r)
}

func (s *Server) apiFailed(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		st, err := statuses(r)
		if err != nil {
			return nil, err
		}
		n, err := limit(r)
		if err != nil {
			return nil, err
		}
		return s.cfg.Read.FailedItems(r.Context(), id, execution.ItemFilter{Statuses: st, After: r.URL.Query().Get("after"), Limit: n})
	})(w, r)
}

func (s *Server) apiCharts(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		return s.cfg.Read.Charts(r.Context(), id)
	})(w, r)
}

func (s *Server) apiItem(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		return s.cfg.Read.ItemExecution(r.Context(), id, MaxPayload)
	})(w, r)
}

// cancelRequest is the body of POST /api/runs/{id}/cancel.
type cancelRequest struct {
	Reason string `json:"reason"`
}

// retryRequest is the optional body of POST /api/runs/{id}/retry.
type retryRequest struct {
	// Cancelled also retries cancelled items.
	Cancelled bool `json:"cancelled"`
	// Statuses names the statuses to retry (default failed and timed_out).
	Statuses []runledger.ExecutionStatus `json:"statuses"`
}

// decodeBody reads a JSON body into v; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return &runledger.InvalidError{Field: "body", Reason: "not the expected JSON object"}
	}
	return nil
}

// maxReason bounds a cancellation reason.
const maxReason = 1000

func validReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxReason {
		return "", &runledger.InvalidError{Field: "reason", Reason: fmt.Sprintf("a reason of 1 to %d characters is required", maxReason)}
	}
	return reason, nil
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		var req cancelRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return s.cancel(r, id, req.Reason)
	})(w, r)
}

func (s *Server) cancel(r *http.Request, id uuid.UUID, reason string) (*report.Cancel, error) {
	reason, err := validReason(reason)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Write.CancelRun(s.actor(r), id, reason)
	if err != nil {
		return nil, err
	}
	c := report.NewCancel(id, res)
	return &c, nil
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) {
	s.withID(func(_ http.ResponseWriter, r *http.Request, id uuid.UUID) (any, error) {
		var req retryRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return s.retry(r, id, req.Statuses, req.Cancelled)
	})(w, r)
}

func (s *Server) retry(r *http.Request, id uuid.UUID, st []runledger.ExecutionStatus, cancelled bool) (*report.Retry, error) {
	if cancelled {
		if len(st) == 0 {
			st = []runledger.ExecutionStatus{runledger.StatusFailed, runledger.StatusTimedOut}
		}
		st = append(st, runledger.StatusCancelled)
	}
	res, err := s.cfg.Write.RetryItems(s.actor(r), id, st...)
	if err != nil {
		return nil, err
	}
	rr := report.NewRetry(id, res)
	return &rr, nil
}

// actor is the request's context with the configured acting user: never a
// value the request chose.
func (s *Server) actor(r *http.Request) context.Context {
	return runledger.WithActor(r.Context(), s.cfg.Actor)
}
