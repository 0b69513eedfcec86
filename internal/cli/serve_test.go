package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/cli"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/report"
)

// failedRun records a run whose two items failed for good and returns the
// database URL and the run.
func failedRun(t *testing.T) (string, uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	url := dbtest.NewURL(t)
	d, err := db.Open(ctx, db.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	x := execution.New(d, execution.Options{})
	t.Cleanup(func() { _ = x.Close() })
	a, err := d.Automation.Create().SetName("cli-retry").Save(ctx)
	require.NoError(t, err)
	bt, err := d.Batch.Create().SetAutomation(a).SetName("b").Save(ctx)
	require.NoError(t, err)
	_, err = x.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0}, {SequenceNumber: 1}}))
	require.NoError(t, err)
	r, err := x.StartRun(ctx, a.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := x.Claim(ctx, "w", 2, time.Minute)
	require.NoError(t, err)
	_, err = x.Fail(ctx, "w", []execution.Failure{{ID: got[0].ID, Error: "x", NonRetryable: true}, {ID: got[1].ID, Error: "y", NonRetryable: true}})
	require.NoError(t, err)
	return url, r.ID
}

func TestRetryCommand(t *testing.T) {
	t.Parallel()
	url, id := failedRun(t)
	env := map[string]string{"DATABASE_URL": url, "USER": "carol"}

	r := run(t, env, "retry", id.String(), "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var got report.Retry
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, report.Retry{RunID: id, Items: 2, BatchExecutions: 1, RunReopened: true}, got)

	r = run(t, env, "retry", id.String())
	require.Equal(t, 1, r.code, "the run is queued again: not finished")
	require.Contains(t, r.stderr, "illegal status transition")

	d, err := db.Open(context.Background(), db.Config{URL: url})
	require.NoError(t, err)
	defer d.Close()
	var actor string
	require.NoError(t, d.SQL().QueryRow(`SELECT created_by FROM item_state_history WHERE new_status = 'queued' AND previous_status = 'failed' LIMIT 1`).Scan(&actor))
	require.Equal(t, "carol", actor)

	r = run(t, env, "retry", "not-a-run")
	require.Equal(t, 2, r.code)
	r = run(t, env, "retry", uuid.NewString(), "--cancelled", "--actor", "dave")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeCommand(t *testing.T) {
	t.Parallel()
	url, id := failedRun(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Execute(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, cli.Env{
			Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return map[string]string{"DATABASE_URL": url}[k] }})
	}()
	var start string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`http://\S+/\?token=[0-9a-f]+`).FindString(out.String())
		start = m
		return m != ""
	}, 30*time.Second, 20*time.Millisecond, "serve prints its URL with a token: %s", errOut.String())
	base := strings.Split(start, "/?")[0]

	res, err := http.Get(base + "/api/runs/" + id.String())
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "loopback reads need no token")
	tok := strings.Split(start, "token=")[1]
	req, err := http.NewRequest(http.MethodPost, base+"/api/runs/"+id.String()+"/retry", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the printed token acts")

	stop()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeRefusesOffLoopbackWithoutToken(t *testing.T) {
	t.Parallel()
	r := run(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, "serve", "--addr", "0.0.0.0:0")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "without a token")
	require.Empty(t, r.stdout)
}
