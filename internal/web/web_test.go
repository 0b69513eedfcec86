package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/web"
)

const token = "t0ken-for-tests"

// evil is untrusted text that must come out inert wherever it is shown.
const evil = `<script>alert("x")</script>`

type bundle struct {
	db       *db.DB
	x        *execution.Client
	ts       *httptest.Server
	auto     *ent.Automation
	finished uuid.UUID // a failed run: 3 succeeded, 2 failed
	failedIE uuid.UUID // one of its failed item executions
	open     uuid.UUID // a queued run of the same items
}

// setup records a finished (failed) run and an open one, with untrusted
// text in the automation name, the payloads and the errors, and serves the
// dashboard on them.
func setup(t *testing.T, configure func(*web.Config)) *bundle {
	t.Helper()
	ctx := context.Background()
	d := dbtest.New(t)
	x := execution.New(d, execution.Options{})
	t.Cleanup(func() { _ = x.Close() })
	b := &bundle{db: d, x: x}
	var err error
	b.auto, err = d.Automation.Create().SetName("auto " + evil + uuid.NewString()[:6]).Save(ctx)
	require.NoError(t, err)
	bt, err := d.Batch.Create().SetAutomation(b.auto).SetName("batch " + evil).Save(ctx)
	require.NoError(t, err)
	items := make([]execution.NewItem, 5)
	for i := range items {
		p, _ := json.Marshal(map[string]any{"n": i, "note": evil})
		items[i] = execution.NewItem{SequenceNumber: int32(i), Payload: p}
	}
	_, err = x.AddItems(ctx, bt.ID, execution.Items(items))
	require.NoError(t, err)
	run, err := x.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: "corr-" + evil})
	require.NoError(t, err)
	b.finished = run.ID
	got, err := x.Claim(ctx, "w", 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, 5)
	var ok []execution.Result
	var bad []execution.Failure
	for _, c := range got {
		if c.SequenceNumber < 3 {
			ok = append(ok, execution.Result{ID: c.ID, Payload: json.RawMessage(`{"done": "` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`)})
		} else {
			bad = append(bad, execution.Failure{ID: c.ID, Error: "boom " + evil, NonRetryable: true})
			b.failedIE = c.ID
		}
	}
	_, err = x.Complete(ctx, "w", ok)
	require.NoError(t, err)
	_, err = x.Fail(ctx, "w", bad)
	require.NoError(t, err)
	open, err := x.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	b.open = open.ID

	cfg := web.Config{Read: x, Write: x, Token: token, Loopback: true}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := web.New(cfg)
	require.NoError(t, err)
	b.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() { b.ts.Close(); srv.Close() })
	return b
}

// client returns an HTTP client that does not follow redirects and keeps
// cookies.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type resp struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, headers ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if c == nil {
		c = client(t)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return resp{code: res.StatusCode, header: res.Header, body: string(data)}
}

func requireInert(t *testing.T, body string) {
	t.Helper()
	require.NotContains(t, body, "<script>alert", "untrusted text is escaped")
}

func TestNewNeedsToken(t *testing.T) {
	t.Parallel()
	_, err := web.New(web.Config{Read: (*execution.Client)(nil), Write: (*execution.Client)(nil)})
	require.ErrorIs(t, err, web.ErrNoToken)
}

func TestPages(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{"Automations", "Latest runs", "&lt;script&gt;", b.finished.String()[:8], "failed"}},
		{"/?status=failed", []string{b.finished.String()[:8]}},
		{"/?correlation_id=nothing", []string{"No runs match."}},
		{"/?inactive=1&part=1", []string{"Automations"}},
		{"/runs/" + b.finished.String(), []string{"Throughput", "Durations", "<svg", "boom &lt;script&gt;", "error summary", "2 of 5 items"}},
		{"/runs/" + b.open.String(), []string{`data-events="/api/runs/` + b.open.String() + `/events"`, "queued"}},
		{"/runs/" + b.finished.String() + "/live", []string{"Batches"}},
		{"/item-executions/" + b.failedIE.String(), []string{"Payload", "&lt;script&gt;", "History", "not retryable", "boom &lt;script&gt;"}},
		{"/static/app.js", []string{"EventSource"}},
		{"/static/app.css", []string{"st-succeeded"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			r := do(t, nil, "GET", b.ts.URL+tc.path, nil)
			require.Equal(t, http.StatusOK, r.code, r.body)
			requireInert(t, r.body)
			for _, w := range tc.want {
				require.Contains(t, strings.ToLower(r.body), strings.ToLower(w))
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/runs/not-a-uuid", "/runs/" + uuid.NewString(), "/item-executions/123", "/item-executions/" + uuid.NewString(), "/nowhere", "/runs/%3Cscript%3E"} {
			r := do(t, nil, "GET", b.ts.URL+p, nil)
			require.Equal(t, http.StatusNotFound, r.code, p)
			requireInert(t, r.body)
		}
	})
	t.Run("bad filter", func(t *testing.T) {
		t.Parallel()
		r := do(t, nil, "GET", b.ts.URL+"/?status=bogus", nil)
		require.Equal(t, http.StatusBadRequest, r.code)
	})
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, p := range []string{"/", "/api/runs", "/runs/" + b.finished.String(), "/nowhere"} {
		r := do(t, nil, "GET", b.ts.URL+p, nil)
		csp := r.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'", p)
		require.Contains(t, csp, "frame-ancestors 'none'", p)
		require.NotContains(t, csp, "unsafe-inline", p)
		require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), p)
	}
	// No inline script or style anywhere in a page.
	r := do(t, nil, "GET", b.ts.URL+"/runs/"+b.finished.String(), nil)
	require.NotRegexp(t, `<script>|<script [^>]*>[^<]|\sstyle=|<style|\son[a-z]+=`, r.body)
}

func TestAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	get := func(t *testing.T, path string, v any) resp {
		r := do(t, nil, "GET", b.ts.URL+path, nil)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"), path)
		if v != nil && r.code == http.StatusOK {
			require.NoError(t, json.Unmarshal([]byte(r.body), v), r.body)
		}
		return r
	}
	t.Run("runs", func(t *testing.T) {
		t.Parallel()
		var page execution.RunPage
		require.Equal(t, 200, get(t, "/api/runs?limit=1", &page).code)
		require.Len(t, page.Runs, 1)
		require.Equal(t, b.open, page.Runs[0].ID)
		require.NotEmpty(t, page.Next)
		require.Equal(t, 200, get(t, "/api/runs?limit=1&after="+url.QueryEscape(page.Next), &page).code)
		require.Equal(t, b.finished, page.Runs[0].ID)
		require.EqualValues(t, 3, page.Runs[0].Counts[runledger.StatusSucceeded])
		require.Equal(t, 200, get(t, "/api/runs?status=failed,cancelled&automation="+url.QueryEscape(b.auto.Name), &page).code)
		require.Len(t, page.Runs, 1)
		require.Equal(t, 200, get(t, "/api/runs?correlation_id="+url.QueryEscape("corr-"+evil), &page).code)
		require.Len(t, page.Runs, 1)
		for _, q := range []string{"status=bogus", "limit=0", "limit=x", "limit=100000", "after=garbage"} {
			r := get(t, "/api/runs?"+q, nil)
			require.Equal(t, http.StatusBadRequest, r.code, q)
			require.Contains(t, r.body, `"error"`)
		}
	})
	t.Run("automations", func(t *testing.T) {
		t.Parallel()
		var page execution.AutomationPage
		require.Equal(t, 200, get(t, "/api/automations?inactive=1&latest_runs=1", &page).code)
		require.Len(t, page.Automations, 1)
		require.Len(t, page.Automations[0].LatestRuns, 1)
		require.Equal(t, 400, get(t, "/api/automations?latest_runs=99", nil).code)
	})
	t.Run("run, progress, failed, charts, item", func(t *testing.T) {
		t.Parallel()
		var d execution.RunDetail
		require.Equal(t, 200, get(t, "/api/runs/"+b.finished.String(), &d).code)
		require.Equal(t, runledger.StatusFailed, d.Status)
		require.EqualValues(t, 5, d.Total)
		var p struct {
			RunID    uuid.UUID                 `json:"run_id"`
			Status   runledger.ExecutionStatus `json:"status"`
			Total    int64                     `json:"total"`
			Finished int64                     `json:"finished"`
		}
		require.Equal(t, 200, get(t, "/api/runs/"+b.finished.String()+"/progress", &p).code)
		require.Equal(t, b.finished, p.RunID)
		require.EqualValues(t, 5, p.Finished)
		var f execution.ItemPage
		require.Equal(t, 200, get(t, "/api/runs/"+b.finished.String()+"/failed?limit=1", &f).code)
		require.Len(t, f.Items, 1)
		require.NotEmpty(t, f.Next)
		require.Equal(t, 200, get(t, "/api/runs/"+b.finished.String()+"/failed?status=succeeded", &f).code)
		require.Len(t, f.Items, 3)
		var ch execution.Charts
		require.Equal(t, 200, get(t, "/api/runs/"+b.finished.String()+"/charts", &ch).code)
		require.EqualValues(t, 5, ch.TotalItems)
		var it map[string]any
		require.Equal(t, 200, get(t, "/api/item-executions/"+b.failedIE.String(), &it).code)
		require.Equal(t, "boom "+evil, it["error"])
		require.Equal(t, evil, it["payload"].(map[string]any)["note"])
	})
	t.Run("not found and bad ids", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{
			"/api/runs/" + uuid.NewString(), "/api/runs/not-a-uuid", "/api/runs/" + uuid.NewString() + "/progress",
			"/api/runs/x/failed", "/api/runs/" + uuid.NewString() + "/failed", "/api/runs/1/charts", "/api/runs/" + uuid.NewString() + "/charts",
			"/api/item-executions/" + uuid.NewString(), "/api/item-executions/zzz", "/api/runs/zzz/events", "/api/runs/" + uuid.NewString() + "/events",
			"/api/nothing",
		} {
			r := get(t, p, nil)
			require.Equal(t, http.StatusNotFound, r.code, p)
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal([]byte(r.body), &e), p)
			require.NotEmpty(t, e.Error)
		}
	})
}

func post(t *testing.T, b *bundle, path, body string, headers ...string) resp {
	t.Helper()
	return do(t, nil, "POST", b.ts.URL+path, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, headers...)...)
}

func lastActor(t *testing.T, b *bundle, runID uuid.UUID) string {
	t.Helper()
	var actor string
	require.NoError(t, b.db.SQL().QueryRow(`SELECT h.created_by FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id
		WHERE ie.run_id = $1 ORDER BY h.changed_at DESC, h.id DESC LIMIT 1`, runID).Scan(&actor))
	return actor
}

func TestAPIActions(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *web.Config) { c.Actor = "ops-team" })
	bearer := []string{"Authorization", "Bearer " + token}
	cancel := "/api/runs/" + b.open.String() + "/cancel"
	retry := "/api/runs/" + b.finished.String() + "/retry"

	r := post(t, b, cancel, `{"reason": "stop"}`)
	require.Equal(t, http.StatusUnauthorized, r.code, "no token")
	require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	r = post(t, b, cancel, `{"reason": "stop"}`, "Authorization", "Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, r.code, "wrong token")
	r = post(t, b, cancel, `{"reason": "stop"}`, "Authorization", token)
	require.Equal(t, http.StatusUnauthorized, r.code, "not a bearer token")
	r = post(t, b, cancel, `{"reason": "stop"}`, append(bearer, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")...)
	require.Equal(t, http.StatusForbidden, r.code, "cross-site")
	r = post(t, b, cancel, `{"reason": ""}`, bearer...)
	require.Equal(t, http.StatusBadRequest, r.code, "empty reason")
	r = post(t, b, cancel, `{"reason": 5}`, bearer...)
	require.Equal(t, http.StatusBadRequest, r.code, "bad JSON")
	r = post(t, b, cancel, `{"reason": "x", "actor": "mallory"}`, bearer...)
	require.Equal(t, http.StatusBadRequest, r.code, "no actor from the request")
	r = post(t, b, "/api/runs/nope/cancel", `{"reason": "x"}`, bearer...)
	require.Equal(t, http.StatusNotFound, r.code)
	r = post(t, b, "/api/runs/"+uuid.NewString()+"/cancel", `{"reason": "x"}`, bearer...)
	require.Equal(t, http.StatusNotFound, r.code)
	r = post(t, b, "/api/runs/"+b.open.String()+"/retry", ``, bearer...)
	require.Equal(t, http.StatusConflict, r.code, "retry of an unfinished run: %s", r.body)

	r = post(t, b, cancel, `{"reason": "wrong input `+strings.ReplaceAll(evil, `"`, `\"`)+`"}`, bearer...)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.JSONEq(t, fmt.Sprintf(`{"run_id": %q, "cancelled": 5, "flagged": 0, "already_cancelled": false}`, b.open), r.body)
	require.Equal(t, "ops-team", lastActor(t, b, b.open), "the configured actor")
	r = post(t, b, cancel, `{"reason": "again"}`, bearer...)
	require.Equal(t, http.StatusOK, r.code, "cancelling twice is harmless")
	require.Contains(t, r.body, `"already_cancelled": true`)
	r = post(t, b, "/api/runs/"+b.finished.String()+"/cancel", `{"reason": "too late"}`, bearer...)
	require.Equal(t, http.StatusConflict, r.code, "a finished run cannot be cancelled: %s", r.body)

	r = post(t, b, retry, ``, bearer...)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.JSONEq(t, fmt.Sprintf(`{"run_id": %q, "items": 2, "batch_executions": 1, "run_reopened": true}`, b.finished), r.body)
	require.Equal(t, "ops-team", lastActor(t, b, b.finished))
	r = post(t, b, "/api/runs/"+b.open.String()+"/retry", `{"cancelled": true}`, bearer...)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, `"items": 5`)
	r = post(t, b, retry, `{"statuses": ["succeeded"]}`, bearer...)
	require.Equal(t, http.StatusBadRequest, r.code)
}

// session logs in through ?token= and returns the client with its cookie
// and the CSRF token of the run page's forms.
func session(t *testing.T, b *bundle, run uuid.UUID) (*http.Client, string) {
	t.Helper()
	c := client(t)
	r := do(t, c, "GET", b.ts.URL+"/runs/"+run.String()+"?token="+token, nil)
	require.Equal(t, http.StatusSeeOther, r.code)
	require.Equal(t, "/runs/"+run.String(), r.header.Get("Location"), "the token leaves the URL")
	set := r.header.Get("Set-Cookie")
	require.Contains(t, set, "HttpOnly")
	require.Contains(t, set, "SameSite=Strict")
	r = do(t, c, "GET", b.ts.URL+"/runs/"+run.String(), nil)
	require.Equal(t, http.StatusOK, r.code)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(r.body)
	require.NotNil(t, m, "forms carry a CSRF token")
	return c, m[1]
}

func TestFormsNeedSessionAndCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	form := func(c *http.Client, path string, v url.Values, headers ...string) resp {
		return do(t, c, "POST", b.ts.URL+path, strings.NewReader(v.Encode()), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
	}
	cancel := "/runs/" + b.open.String() + "/cancel"

	r := do(t, nil, "GET", b.ts.URL+"/?token=wrong", nil)
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Empty(t, r.header.Get("Set-Cookie"))
	r = do(t, nil, "GET", b.ts.URL+"/runs/"+b.open.String(), nil)
	require.NotContains(t, r.body, `name="csrf"`, "no forms without a session")

	r = form(nil, cancel, url.Values{"reason": {"x"}})
	require.Equal(t, http.StatusUnauthorized, r.code, "no session")
	r = form(nil, cancel, url.Values{"reason": {"x"}}, "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusUnauthorized, r.code, "pages take the session, not a bearer token")

	c, csrf := session(t, b, b.open)
	r = form(c, cancel, url.Values{"reason": {"x"}})
	require.Equal(t, http.StatusForbidden, r.code, "missing CSRF token")
	r = form(c, cancel, url.Values{"reason": {"x"}, "csrf": {strings.Repeat("0", len(csrf))}})
	require.Equal(t, http.StatusForbidden, r.code, "wrong CSRF token")
	r = form(c, cancel, url.Values{"reason": {"x"}, "csrf": {csrf}}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, r.code, "cross-site")
	other, _ := session(t, b, b.open)
	r = form(other, cancel, url.Values{"reason": {"x"}, "csrf": {csrf}})
	require.Equal(t, http.StatusForbidden, r.code, "another session's CSRF token")

	r = form(c, cancel, url.Values{"reason": {"operator says " + evil}, "csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.code, r.body)
	require.Contains(t, r.header.Get("Location"), "/runs/"+b.open.String()+"?did=cancel&c=5")
	require.Equal(t, "dashboard", lastActor(t, b, b.open))
	r = do(t, c, "GET", b.ts.URL+r.header.Get("Location"), nil)
	require.Contains(t, r.body, "5 items cancelled at once")
	require.Contains(t, r.body, "operator says &lt;script&gt;")
	requireInert(t, r.body)

	r = form(c, "/runs/"+b.finished.String()+"/retry", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.code, r.body)
	require.Contains(t, r.header.Get("Location"), "did=retry&i=2&b=1")
	r = form(c, "/runs/"+b.open.String()+"/retry", url.Values{"csrf": {csrf}, "cancelled": {"1"}})
	require.Equal(t, http.StatusSeeOther, r.code, r.body)
	r = form(c, "/runs/"+b.open.String()+"/cancel", url.Values{"csrf": {csrf}, "reason": {""}})
	require.Equal(t, http.StatusBadRequest, r.code)
	r = form(c, "/runs/zzz/cancel", url.Values{"csrf": {csrf}, "reason": {"x"}})
	require.Equal(t, http.StatusNotFound, r.code)
}

func TestOffLoopbackReadsNeedToken(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *web.Config) { c.Loopback = false })
	for _, p := range []string{"/", "/runs/" + b.finished.String(), "/api/runs", "/api/runs/" + b.finished.String() + "/events"} {
		r := do(t, nil, "GET", b.ts.URL+p, nil)
		require.Equal(t, http.StatusUnauthorized, r.code, p)
		requireInert(t, r.body)
	}
	r := do(t, nil, "GET", b.ts.URL+"/api/runs", nil, "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusOK, r.code)
	r = do(t, nil, "GET", b.ts.URL+"/api/runs", nil, "Authorization", "Bearer nope")
	require.Equal(t, http.StatusUnauthorized, r.code)
	c, _ := session(t, b, b.finished)
	r = do(t, c, "GET", b.ts.URL+"/api/runs/"+b.finished.String(), nil)
	require.Equal(t, http.StatusOK, r.code, "the page's session reads the API too (event streams)")
	r = do(t, nil, "GET", b.ts.URL+"/", nil, "Host", "dashboard.example.com")
	require.Equal(t, http.StatusUnauthorized, r.code, "off loopback any host name, but the token")
}

func TestLoopbackHostGuard(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for host, want := range map[string]int{
		"evil.example":          http.StatusForbidden,
		"evil.example:8080":     http.StatusForbidden,
		"127.0.0.1.nip.io:8080": http.StatusForbidden,
		"localhost:8080":        http.StatusOK,
		"127.0.0.1":             http.StatusOK,
		"[::1]:8080":            http.StatusOK,
	} {
		req, err := http.NewRequest(http.MethodGet, b.ts.URL+"/api/runs", nil)
		require.NoError(t, err)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, want, res.StatusCode, host)
	}
}

func TestPayloadCapped(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	bt, err := b.db.Batch.Create().SetAutomation(b.auto).SetName("big").Save(ctx)
	require.NoError(t, err)
	big := `{"n": 9, "blob": "` + strings.Repeat("<script>", 20000) + `"}`
	_, err = b.x.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0, Payload: json.RawMessage(big)}}))
	require.NoError(t, err)
	run, err := b.x.StartRun(ctx, b.auto.ID, execution.StartOptions{Batches: []uuid.UUID{bt.ID}})
	require.NoError(t, err)
	var ie uuid.UUID
	require.NoError(t, b.db.SQL().QueryRow(`SELECT id FROM item_execution WHERE run_id = $1`, run.ID).Scan(&ie))
	r := do(t, nil, "GET", b.ts.URL+"/item-executions/"+ie.String(), nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, r.body, "Showing the first 64.0 KiB")
	require.Less(t, len(r.body), 2*web.MaxPayload+40000, "the page is capped")
	requireInert(t, r.body)
	r = do(t, nil, "GET", b.ts.URL+"/api/item-executions/"+ie.String(), nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, r.body, `"payload_truncated": true`)
}

// readEvent reads the next Server-Sent Event.
func readEvent(t *testing.T, sc *bufio.Scanner) (string, string) {
	t.Helper()
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	require.NoError(t, sc.Err())
	t.Fatal("event stream ended")
	return "", ""
}

func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.ts.URL+"/api/runs/"+b.open.String()+"/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	sc := bufio.NewScanner(res.Body)

	name, data := readEvent(t, sc)
	require.Equal(t, "progress", name)
	require.Contains(t, data, `"finished":0`)
	// A second viewer shares the same feed and gets the latest state at once.
	res2, err := http.DefaultClient.Do(req.Clone(ctx))
	require.NoError(t, err)
	defer func() { _ = res2.Body.Close() }()
	name, _ = readEvent(t, bufio.NewScanner(res2.Body))
	require.Equal(t, "progress", name)

	got, err := b.x.Claim(ctx, "w", 2, time.Minute)
	require.NoError(t, err)
	_, err = b.x.Complete(ctx, "w", []execution.Result{{ID: got[0].ID}, {ID: got[1].ID}})
	require.NoError(t, err)
	name, data = readEvent(t, sc)
	require.Equal(t, "progress", name)
	require.Contains(t, data, `"finished":2`)

	_, err = b.x.CancelRun(ctx, b.open, "enough")
	require.NoError(t, err)
	for name != "done" {
		name, data = readEvent(t, sc)
		if name == "progress" {
			require.Contains(t, data, `"cancelled"`)
		}
	}
}
