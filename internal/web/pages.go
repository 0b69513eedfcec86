package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// pages holds one parsed template set per page.
type pages struct {
	overview, run, item, errorPage *template.Template
}

func loadPages() (*pages, error) {
	parse := func(page string) (*template.Template, error) {
		return template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+page)
	}
	var p pages
	var err error
	for _, x := range []struct {
		t    **template.Template
		file string
	}{{&p.overview, "overview.html"}, {&p.run, "run.html"}, {&p.item, "item.html"}, {&p.errorPage, "error.html"}} {
		if *x.t, err = parse(x.file); err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
	}
	return &p, nil
}

// base is what every page's layout reads.
type base struct {
	Title string
	CSRF  string // empty without a session: the page then offers no actions
	Flash string
}

// render executes a page template into a buffer first, so that a template
// error becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, t *template.Template, name string, code int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "dashboard template failed", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	base
	Code    int
	Message string
}

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, s.pages.errorPage, "layout", code, errorData{base: base{Title: http.StatusText(code)}, Code: code, Message: msg})
}

// pageFail answers a page whose data could not be read.
func (s *Server) pageFail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	if code >= 500 && !errors.Is(err, context.Canceled) {
		s.cfg.Logger.ErrorContext(r.Context(), "dashboard page failed", "path", r.URL.Path, "err", err)
	}
	s.pageError(w, r, code, msg)
}

type overviewData struct {
	base
	Automations *execution.AutomationPage
	Runs        *execution.RunPage
	Status      string
	Automation  string
	Correlation string
	Inactive    bool
	Statuses    []runledger.ExecutionStatus
	NextRuns    string // URL of the next page of runs
	NextAutos   string // URL of the next page of automations
	Live        bool   // some run shown is unfinished
	PartURL     string
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := runFilter(r)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	d := overviewData{
		base:   base{Title: "Overview", CSRF: s.csrfFor(r)},
		Status: q.Get("status"), Automation: f.Automation, Correlation: f.CorrelationID, Inactive: truthy(q.Get("inactive")),
		Statuses: runledger.AllStatuses,
	}
	d.Automations, err = s.cfg.Read.ListAutomations(r.Context(), execution.AutomationFilter{Inactive: d.Inactive, After: q.Get("autos_after"), Limit: 20})
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	d.Runs, err = s.cfg.Read.ListRuns(r.Context(), f)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	if d.Runs.Next != "" {
		d.NextRuns = withQuery(r.URL, "after", d.Runs.Next)
	}
	if d.Automations.Next != "" {
		d.NextAutos = withQuery(r.URL, "autos_after", d.Automations.Next)
	}
	for _, run := range d.Runs.Runs {
		d.Live = d.Live || !run.Status.Terminal()
	}
	for _, a := range d.Automations.Automations {
		for _, run := range a.LatestRuns {
			d.Live = d.Live || !run.Status.Terminal()
		}
	}
	d.PartURL = withQuery(r.URL, "part", "1")
	name := "layout"
	if q.Get("part") != "" {
		name = "overview-live"
	}
	s.render(w, r, s.pages.overview, name, http.StatusOK, d)
}

// withQuery returns u's path and query with key set to value.
func withQuery(u *url.URL, key, value string) string {
	q := u.Query()
	q.Set(key, value)
	q.Del("part")
	if key == "part" {
		q.Set(key, value)
	}
	return u.Path + "?" + q.Encode()
}

type runData struct {
	base
	Run        *execution.RunDetail
	Throughput *chartView
	Durations  *chartView
	Sampled    string // a note when the charts come from a sample
	Failed     *execution.ItemPage
	NextFailed string
	Live       bool
}

// loadRun reads what the run page and its live part show.
func (s *Server) loadRun(r *http.Request, id uuid.UUID) (*runData, error) {
	ctx := r.Context()
	d := &runData{base: base{CSRF: s.csrfFor(r)}}
	var err error
	if d.Run, err = s.cfg.Read.RunDetail(ctx, id); err != nil {
		return nil, err
	}
	d.Title = "Run " + shortID(d.Run.ID)
	ch, err := s.cfg.Read.Charts(ctx, id)
	if err != nil {
		return nil, err
	}
	d.Throughput, d.Durations = throughputChart(ch), durationChart(ch)
	if ch.Sampled {
		d.Sampled = fmt.Sprintf("Charts estimated from a sample of %d of %d items (TABLESAMPLE), scaled up.", ch.SampleItems, ch.TotalItems)
	}
	if d.Failed, err = s.cfg.Read.FailedItems(ctx, id, execution.ItemFilter{After: r.URL.Query().Get("after"), Limit: 20}); err != nil {
		return nil, err
	}
	if d.Failed.Next != "" {
		d.NextFailed = "/runs/" + id.String() + "?after=" + url.QueryEscape(d.Failed.Next) + "#failed"
	}
	d.Live = !d.Run.Status.Terminal()
	return d, nil
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.pageFail(w, r, notFoundID(r))
		return
	}
	d, err := s.loadRun(r, id)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	d.Flash = flash(r.URL.Query())
	s.render(w, r, s.pages.run, "layout", http.StatusOK, d)
}

// runLive renders the live part of the run page alone; the page's script
// swaps it in when the event stream reports a change.
func (s *Server) runLive(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.pageFail(w, r, notFoundID(r))
		return
	}
	d, err := s.loadRun(r, id)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	s.render(w, r, s.pages.run, "live", http.StatusOK, d)
}

// flash words the outcome of an action from the redirect's numbers only:
// no text from the URL reaches the page.
func flash(q url.Values) string {
	n := func(k string) int64 {
		v, _ := strconv.ParseInt(q.Get(k), 10, 64)
		return v
	}
	switch q.Get("did") {
	case "cancel":
		if q.Get("a") == "1" {
			return "The run had already been cancelled."
		}
		return fmt.Sprintf("Cancel requested: %d items cancelled at once, %d running items cancelled at their worker's next report.", n("c"), n("f"))
	case "retry":
		if n("i") == 0 {
			return "Nothing to retry."
		}
		return fmt.Sprintf("Retry: %d items back to queued, %d batch executions reopened.", n("i"), n("b"))
	}
	return ""
}

func (s *Server) cancelForm(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.pageFail(w, r, notFoundID(r))
		return
	}
	res, err := s.cancel(r, id, r.PostForm.Get("reason"))
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	already := 0
	if res.AlreadyCancelled {
		already = 1
	}
	http.Redirect(w, r, fmt.Sprintf("/runs/%s?did=cancel&c=%d&f=%d&a=%d", id, res.Cancelled, res.Flagged, already), http.StatusSeeOther)
}

func (s *Server) retryForm(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.pageFail(w, r, notFoundID(r))
		return
	}
	res, err := s.retry(r, id, nil, truthy(r.PostForm.Get("cancelled")))
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/runs/%s?did=retry&i=%d&b=%d", id, res.Items, res.BatchExecutions), http.StatusSeeOther)
}

type itemData struct {
	base
	Item    *execution.ItemDetail
	Payload string
	Result  string
}

func (s *Server) itemPage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.pageFail(w, r, notFoundID(r))
		return
	}
	it, err := s.cfg.Read.ItemExecution(r.Context(), id, MaxPayload)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	d := itemData{base: base{Title: "Item execution " + shortID(id), CSRF: s.csrfFor(r)}, Item: it,
		Payload: showPayload(it.Payload), Result: showPayload(it.Result)}
	s.render(w, r, s.pages.item, "layout", http.StatusOK, d)
}

// showPayload renders a payload for a <pre>: indented JSON, or the
// truncated preview as it is.
func showPayload(p execution.Payload) string {
	if p.Truncated {
		return p.Preview
	}
	if p.JSON == nil {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, p.JSON, "", "  "); err != nil {
		return string(p.JSON)
	}
	return buf.String()
}

func shortID(id uuid.UUID) string { return id.String()[:8] }

var funcs = template.FuncMap{
	"short": shortID,
	"when": func(t any) string {
		switch v := t.(type) {
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"span": func(start, end *time.Time) string {
		if start == nil {
			return ""
		}
		stop := time.Now()
		if end != nil {
			stop = *end
		}
		return roundDuration(stop.Sub(*start))
	},
	"counts":   report.CountsLine[execution.Counts],
	"bar":      progressBar,
	"terminal": func(s runledger.ExecutionStatus) bool { return s.Terminal() },
	"percent": func(c execution.Counts) string {
		if c.Total() == 0 {
			return "0%"
		}
		return fmt.Sprintf("%d%%", c.Finished()*100/c.Total())
	},
	"deref": func(p *int32) string {
		if p == nil {
			return "∞"
		}
		return strconv.Itoa(int(*p))
	},
	"kb": func(n int) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) },
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
