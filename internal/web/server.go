// Package web is runledger's dashboard: server-rendered pages (overview,
// run, item execution) with live updates over Server-Sent Events, a JSON API
// under /api/, and the operator's two actions, cancel a run and retry its
// failed items. Templates and assets are embedded; no front-end build.
//
// It reads through the execution views (a Reader, which may sit on a read
// replica) and acts through a Writer (the primary). Security: see Config and
// docs/dashboard.md.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// Reader is what the dashboard reads. *execution.Client implements it.
type Reader interface {
	ListRuns(ctx context.Context, f execution.RunFilter) (*execution.RunPage, error)
	ListAutomations(ctx context.Context, f execution.AutomationFilter) (*execution.AutomationPage, error)
	RunDetail(ctx context.Context, runID uuid.UUID) (*execution.RunDetail, error)
	Progress(ctx context.Context, runID uuid.UUID) (*execution.Progress, error)
	FailedItems(ctx context.Context, runID uuid.UUID, f execution.ItemFilter) (*execution.ItemPage, error)
	ItemExecution(ctx context.Context, id uuid.UUID, maxPayload int) (*execution.ItemDetail, error)
	Charts(ctx context.Context, runID uuid.UUID) (*execution.Charts, error)
}

// Writer is what the dashboard's actions do. *execution.Client implements it.
type Writer interface {
	CancelRun(ctx context.Context, runID uuid.UUID, reason string) (execution.CancelResult, error)
	RetryItems(ctx context.Context, runID uuid.UUID, statuses ...runledger.ExecutionStatus) (execution.RetryResult, error)
}

var (
	_ Reader = (*execution.Client)(nil)
	_ Writer = (*execution.Client)(nil)
)

// DefaultActor is the acting user recorded for the dashboard's actions.
const DefaultActor = "dashboard"

// MaxPayload is the most bytes of a payload or result a page or the API
// shows; longer ones are shown truncated.
const MaxPayload = 64 << 10

// Config configures a Server.
type Config struct {
	// Read serves every page and GET endpoint; Write the actions. They may
	// be the same client.
	Read  Reader
	Write Writer
	// Token is the secret every action needs (Authorization: Bearer for the
	// API; for pages, a session cookie obtained by visiting any page with
	// ?token= once, plus a CSRF token on every form). Required.
	Token string
	// Loopback tells that the server listens only on a loopback address:
	// reads then need no token, and the Host header must name a loopback
	// host (a guard against DNS rebinding). Off loopback every request needs
	// the token.
	Loopback bool
	// Actor is recorded as the acting user of every action (default
	// DefaultActor). It never comes from a request.
	Actor string
	// PollInterval is how often a run's live feed reads the ledger (default
	// and minimum one second).
	PollInterval time.Duration
	// Logger receives server errors; nil means slog.Default().
	Logger *slog.Logger
}

// Server is the dashboard. Close it to stop its live feeds.
type Server struct {
	cfg       Config
	tokenHash [32]byte
	key       []byte // signs session cookies and CSRF tokens
	pages     *pages
	feeds     *hub
	handler   http.Handler
	stop      context.CancelFunc
}

// ErrNoToken is returned by New when Config.Token is empty.
var ErrNoToken = errors.New("web: a token is required")

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		return nil, ErrNoToken
	}
	if cfg.Read == nil || cfg.Write == nil {
		return nil, errors.New("web: Read and Write are required")
	}
	if cfg.Actor == "" {
		cfg.Actor = DefaultActor
	}
	if cfg.PollInterval < time.Second {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	pg, err := loadPages()
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, tokenHash: sha256.Sum256([]byte(cfg.Token)), key: key, pages: pg, stop: stop}
	s.feeds = newHub(ctx, cfg.Read, cfg.PollInterval, cfg.Logger)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the dashboard's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the live feeds; open event streams end.
func (s *Server) Close() { s.stop() }

// tokenOK compares a presented token with the configured one in constant
// time.
func (s *Server) tokenOK(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	return presented != "" && subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Pages.
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /runs/{id}", s.runPage)
	mux.HandleFunc("GET /runs/{id}/live", s.runLive)
	mux.HandleFunc("POST /runs/{id}/cancel", s.cancelForm)
	mux.HandleFunc("POST /runs/{id}/retry", s.retryForm)
	mux.HandleFunc("GET /item-executions/{id}", s.itemPage)
	mux.Handle("GET /static/", staticHandler())
	// API.
	mux.HandleFunc("GET /api/runs", s.apiRuns)
	mux.HandleFunc("GET /api/automations", s.apiAutomations)
	mux.HandleFunc("GET /api/runs/{id}", s.apiRun)
	mux.HandleFunc("GET /api/runs/{id}/progress", s.apiProgress)
	mux.HandleFunc("GET /api/runs/{id}/failed", s.apiFailed)
	mux.HandleFunc("GET /api/runs/{id}/charts", s.apiCharts)
	mux.HandleFunc("GET /api/runs/{id}/events", s.apiEvents)
	mux.HandleFunc("GET /api/item-executions/{id}", s.apiItem)
	mux.HandleFunc("POST /api/runs/{id}/cancel", s.apiCancel)
	mux.HandleFunc("POST /api/runs/{id}/retry", s.apiRetry)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.pageError(w, r, http.StatusNotFound, "page not found")
	})
	return s.secure(mux)
}
