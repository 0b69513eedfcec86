package execution_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
)

// TestRunnerChildProcess is the runner process TestRunnerProcessKilled
// starts (the test binary re-executed). Run directly, without its
// environment, it does nothing.
func TestRunnerChildProcess(t *testing.T) {
	t.Parallel()
	url := os.Getenv("RUNLEDGER_TEST_CHILD_URL")
	if url == "" {
		return
	}
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: url})
	require.NoError(t, err)
	defer d.Close()
	x := execution.New(d, execution.Options{RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond})
	var mu sync.Mutex
	ws := execution.NewWorkers()
	ws.Handle(os.Getenv("RUNLEDGER_TEST_CHILD_AUTOMATION"), execution.HandlerFunc(func(_ context.Context, it execution.Claimed) (json.RawMessage, error) {
		mu.Lock()
		fmt.Printf("handled %s %d\n", it.ID, it.Attempt)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil, nil
	}), execution.HandlerOptions{Concurrency: 4})
	r, err := x.NewRunner(ws, execution.RunnerOptions{Name: os.Getenv("RUNLEDGER_TEST_CHILD_NAME"), Lease: time.Second, MaintenanceInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	fmt.Println("started")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	require.NoError(t, r.Stop(ctx))
}

// TestRunnerProcessKilled: two runner processes share a run; one is killed
// with SIGKILL mid-run; the other finishes every item (the dead one's come
// back through the surviving runner's maintenance), and no attempt of an
// item is handled twice.
func TestRunnerProcessKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewURL(t)
	d, err := db.Open(ctx, db.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	x := execution.New(d, execution.Options{})
	a, err := d.Automation.Create().SetName("killed").Save(ctx)
	require.NoError(t, err)
	bt, err := d.Batch.Create().SetAutomation(a).SetName("b").Save(ctx)
	require.NoError(t, err)
	items := make([]execution.NewItem, 400)
	for i := range items {
		items[i] = execution.NewItem{SequenceNumber: int32(i)}
	}
	_, err = x.AddItems(ctx, bt.ID, execution.Items(items))
	require.NoError(t, err)

	var (
		mu      sync.Mutex
		handled = map[string]int{} // "id attempt" -> calls
		byChild = map[string]int{}
	)
	start := func(name string) (*exec.Cmd, io.WriteCloser, chan struct{}) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRunnerChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "RUNLEDGER_TEST_CHILD_URL="+url, "RUNLEDGER_TEST_CHILD_AUTOMATION="+a.Name, "RUNLEDGER_TEST_CHILD_NAME="+name)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if line == "started" {
					close(ready)
				}
				if key, ok := strings.CutPrefix(line, "handled "); ok {
					mu.Lock()
					handled[key]++
					byChild[name]++
					mu.Unlock()
				}
			}
		}()
		return cmd, stdin, ready
	}
	c1, in1, ready1 := start("survivor")
	c2, _, ready2 := start("victim")
	<-ready1
	<-ready2
	run, err := x.StartRun(ctx, a.ID, execution.StartOptions{MaxAttempts: 5})
	require.NoError(t, err)
	waitFor(t, "the victim to handle items", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return byChild["victim"] >= 20
	})
	require.NoError(t, c2.Process.Kill()) // SIGKILL: no Stop, no hand-back
	_ = c2.Wait()
	waitFor(t, "the run to succeed", func() bool {
		r, err := d.Run.Get(ctx, run.ID)
		require.NoError(t, err)
		return r.Status == runledger.StatusSucceeded
	})
	require.NoError(t, in1.Close())
	require.NoError(t, c1.Wait())

	mu.Lock()
	defer mu.Unlock()
	for key, n := range handled {
		require.Equal(t, 1, n, "attempt %s handled %d times", key, n)
	}
	require.Positive(t, byChild["survivor"])
	// The ledger: attempt_count is the number of claims in the history.
	var bad int
	require.NoError(t, d.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution ie
		WHERE ie.run_id = $1 AND ie.attempt_count <> (SELECT count(*) FROM item_state_history h WHERE h.item_execution_id = ie.id AND h.new_status = 'running')`, run.ID).Scan(&bad))
	require.Zero(t, bad)
}
