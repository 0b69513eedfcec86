package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/web"
)

// chromium finds the browser. Its absence fails the test: CI installs
// Debian's chromium package (.ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: apt-get install -y chromium (.ci/run does)")
	return ""
}

// TestBrowser drives headless Chromium through the dashboard during a
// burn-down: the overview, the run page whose progress changes without a
// reload, and the cancel form. With RUNLEDGER_SCREENSHOTS=DIR it also
// writes the screenshots docs/dashboard.md shows.
func TestBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	ctx := context.Background()
	d := dbtest.New(t)
	x := execution.New(d, execution.Options{RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond})
	t.Cleanup(func() { _ = x.Close() })

	// An automation with two batches of invoices, one finished run with a
	// few failures, and one run that workers burn down slowly.
	a, err := d.Automation.Create().SetName("invoice-processing").SetDescription("Posts supplier invoices to the ledger").Save(ctx)
	require.NoError(t, err)
	for i, name := range []string{"north", "south"} {
		bt, err := d.Batch.Create().SetAutomation(a).SetName(name).Save(ctx)
		require.NoError(t, err)
		items := make([]execution.NewItem, 150)
		for j := range items {
			p, _ := json.Marshal(map[string]any{"invoice": fmt.Sprintf("INV-%d%03d", i+1, j), "amount": 100 + j})
			items[j] = execution.NewItem{SequenceNumber: int32(j), Payload: p}
		}
		_, err = x.AddItems(ctx, bt.ID, execution.Items(items))
		require.NoError(t, err)
	}
	other, err := d.Automation.Create().SetName("vendor-onboarding").Save(ctx)
	require.NoError(t, err)
	_, err = x.StartRun(ctx, other.ID, execution.StartOptions{CorrelationID: "ticket-88"})
	require.NoError(t, err)
	done, err := x.StartRun(ctx, a.ID, execution.StartOptions{CorrelationID: "nightly-06"})
	require.NoError(t, err)
	// work claims n items at a time, takes pause over them, and reports;
	// it returns when ctx ends, or when nothing is left if untilEmpty (the
	// first run, where a few invoices fail for good).
	work := func(ctx context.Context, worker string, n int, pause time.Duration, untilEmpty bool) {
		for ctx.Err() == nil {
			got, err := x.Claim(ctx, worker, n, time.Minute)
			if err != nil || (len(got) == 0 && untilEmpty) {
				return
			}
			if len(got) == 0 {
				time.Sleep(pause)
				continue
			}
			time.Sleep(pause)
			var ok []execution.Result
			var bad []execution.Failure
			for _, c := range got {
				if untilEmpty && c.SequenceNumber%37 == 13 {
					bad = append(bad, execution.Failure{ID: c.ID, Error: "invoice total does not match its lines", NonRetryable: true})
				} else {
					ok = append(ok, execution.Result{ID: c.ID, Payload: json.RawMessage(`{"posted": true}`)})
				}
			}
			_, _ = x.Complete(context.WithoutCancel(ctx), worker, ok)
			_, _ = x.Fail(context.WithoutCancel(ctx), worker, bad)
		}
	}
	burn, stopBurn := context.WithTimeout(ctx, 2*time.Minute)
	work(burn, "worker-0", 100, 0, true) // finishes the first run
	stopBurn()
	r, err := d.Run.Get(ctx, done.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusFailed, r.Status)

	live, err := x.StartRun(ctx, a.ID, execution.StartOptions{CorrelationID: "nightly-07"})
	require.NoError(t, err)
	burn, stopBurn = context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 { // about 8 items a second: the burn-down lasts ~40 s
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(burn, fmt.Sprintf("worker-%d", i+1), 2, 500*time.Millisecond, false)
		}()
	}
	t.Cleanup(func() { stopBurn(); wg.Wait() })

	srv, err := web.New(web.Config{Read: x, Write: x, Token: token, Loopback: true})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelTimeout()
	shots := os.Getenv("RUNLEDGER_SCREENSHOTS")
	shoot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name), png, 0o644))
	}
	text := func(sel string) string {
		t.Helper()
		// A live region can be replaced between finding its node and
		// reading it ("No node with given id found"): read again.
		var (
			s   string
			err error
		)
		for range 5 {
			if s, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel))); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}

	// The overview, after exchanging the token for a session cookie.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/?token="+token),
		chromedp.WaitVisible(chromedp.CSS("#overview-live table.runs")),
	))
	overview := text("main")
	require.Contains(t, overview, "invoice-processing")
	require.Contains(t, overview, "nightly-07")
	require.Contains(t, overview, "vendor-onboarding")
	loc, err := chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	require.NotContains(t, loc, "token=", "the token left the address bar")
	shoot("overview.png")

	// The run page: progress changes without a reload.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/runs/"+live.ID.String()),
		chromedp.WaitVisible(chromedp.CSS("#run-progress")),
	))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[string](`window.runledgerTestMarker = "same page"`))
	require.NoError(t, err)
	first := text("#run-progress")
	require.Eventually(t, func() bool {
		now, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#run-progress")))
		return err == nil && now != first && !strings.HasPrefix(now, "0%")
	}, time.Minute, 200*time.Millisecond, "progress moves on the page: %s", first)
	marker, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.runledgerTestMarker || "reloaded"`))
	require.NoError(t, err)
	require.Equal(t, "same page", marker, "no full-page reload")
	require.NoError(t, chromedp.Do(bctx, chromedp.Sleep(1500*time.Millisecond)))
	shoot("run.png")

	// Cancel with a reason; the page follows the run to cancelled.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#cancel-reason"), "wrong input file"),
		chromedp.Click(chromedp.CSS("#cancel-form button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	))
	ok := assert.Eventually(t, func() bool {
		status, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#run-status")))
		return err == nil && strings.TrimSpace(status) == "cancelled"
	}, time.Minute, 200*time.Millisecond, "the run page shows the run cancelled")
	if !ok {
		r, err := d.Run.Get(ctx, live.ID)
		require.NoError(t, err)
		html, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("#live")))
		t.Fatalf("run is %s in the database; the page has:\n%.3000s", r.Status, html)
	}
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#retry-form"))))
	// The forms follow the progress event at once; the reason comes with
	// the live part that the same event then fetches.
	require.Eventually(t, func() bool {
		shown, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#cancel-reason-shown")))
		return err == nil && strings.TrimSpace(shown) == "wrong input file"
	}, time.Minute, 100*time.Millisecond, "the page shows the cancellation reason")
	r, err = d.Run.Get(ctx, live.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusCancelled, r.Status)
	require.Equal(t, "wrong input file", *r.CancellationReason)
}
