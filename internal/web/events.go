package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/internal/report"
)

// event is one Server-Sent Event: "progress" (the run's progress as JSON)
// or "done" (the run finished; the stream ends).
type event struct {
	name string
	data []byte
}

// hub runs one feed per watched run: whatever the number of pages open on a
// run, its ledger is read at most once per interval, and only while someone
// watches.
type hub struct {
	ctx      context.Context
	read     Reader
	interval time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	feeds map[uuid.UUID]*feed
}

type feed struct {
	subs map[chan event]struct{}
	last *event // the latest progress, for new subscribers
}

func newHub(ctx context.Context, read Reader, interval time.Duration, log *slog.Logger) *hub {
	return &hub{ctx: ctx, read: read, interval: interval, log: log, feeds: map[uuid.UUID]*feed{}}
}

// subscribe returns a channel of the run's events and a function that ends
// the subscription. The channel holds the latest event only: a slow reader
// skips intermediate ones, never blocks the feed. It is closed after "done".
func (h *hub) subscribe(run uuid.UUID) (<-chan event, func()) {
	ch := make(chan event, 1)
	h.mu.Lock()
	f, ok := h.feeds[run]
	if !ok {
		f = &feed{subs: map[chan event]struct{}{}}
		h.feeds[run] = f
		go h.poll(run, f)
	}
	f.subs[ch] = struct{}{}
	if f.last != nil {
		ch <- *f.last
	}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// poll reads the run's progress every interval while it has subscribers
// and sends it when it changed; when the run is finished it sends "done"
// and ends the feed.
func (h *hub) poll(run uuid.UUID, f *feed) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		ev, done := h.read1(run)
		h.mu.Lock()
		if len(f.subs) == 0 {
			delete(h.feeds, run)
			h.mu.Unlock()
			return
		}
		if ev != nil && (f.last == nil || !bytes.Equal(f.last.data, ev.data)) {
			f.last = ev
			h.broadcast(f, *ev)
		}
		if done {
			h.broadcast(f, event{name: "done", data: []byte("{}")})
			for ch := range f.subs {
				delete(f.subs, ch)
				close(ch)
			}
			delete(h.feeds, run)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		select {
		case <-h.ctx.Done():
			h.mu.Lock()
			for ch := range f.subs {
				delete(f.subs, ch)
				close(ch)
			}
			delete(h.feeds, run)
			h.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// broadcast sends ev to every subscriber, replacing an unread older event.
// The caller holds h.mu.
func (h *hub) broadcast(f *feed, ev event) {
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
			select {
			case <-ch:
			default:
			}
			ch <- ev
		}
	}
}

// read1 reads the run's progress once. A missing run ends the feed; a
// failed read is logged and retried at the next tick.
func (h *hub) read1(run uuid.UUID) (*event, bool) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	p, err := h.read.Progress(ctx, run)
	if err != nil {
		if code, _ := statusOf(err); code == http.StatusNotFound {
			return nil, true
		}
		if h.ctx.Err() == nil {
			h.log.Warn("dashboard live feed: read failed", "run", run, "err", err)
		}
		return nil, false
	}
	data, err := json.Marshal(report.NewProgress(p))
	if err != nil {
		return nil, false
	}
	return &event{name: "progress", data: data}, p.Status.Terminal()
}

// keepAlive is how often an idle event stream gets a comment line, so that
// proxies keep it open.
const keepAlive = 15 * time.Second

// apiEvents streams a run's progress as Server-Sent Events: a "progress"
// event (the JSON of GET /api/runs/{id}/progress) at once and whenever it
// changes, read from the ledger at most once a second, then "done" when the
// run finishes.
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.apiFail(w, r, notFoundID(r))
		return
	}
	// The run must exist: a 404 is an answer, an empty stream is not.
	if _, err := s.cfg.Read.Progress(r.Context(), id); err != nil {
		s.apiFail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	events, unsubscribe := s.feeds.subscribe(id)
	defer unsubscribe()
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data); err != nil {
				return
			}
			if ev.name == "done" {
				_ = rc.Flush()
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
