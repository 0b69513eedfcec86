package execution_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/execution"
)

// BenchmarkRunnerWakeup measures the time from StartRun's commit to the
// first handler call on an idle runner whose fallback poll is 5 s: the
// notification, not the poll, wakes it. It reports the median and p95.
//
//	go test -run '^$' -bench RunnerWakeup -benchtime 30x ./execution
func BenchmarkRunnerWakeup(b *testing.B) {
	ctx := context.Background()
	bd := setup(b, execution.Options{}, 1)
	called := make(chan time.Time, 1)
	ws := execution.NewWorkers()
	ws.Handle(bd.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) {
		called <- time.Now()
		return nil, nil
	}), execution.HandlerOptions{})
	r, err := bd.exec.NewRunner(ws, execution.RunnerOptions{Name: "wakeup", PollInterval: 5 * time.Second, NoMaintenance: true})
	require.NoError(b, err)
	require.NoError(b, r.Start(ctx))
	b.Cleanup(func() { _ = r.Stop(ctx) })
	time.Sleep(100 * time.Millisecond)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		time.Sleep(20 * time.Millisecond) // idle again
		tx, err := bd.db.SQL().BeginTx(ctx, nil)
		require.NoError(b, err)
		_, err = bd.exec.StartRunTx(ctx, tx, bd.auto.ID, execution.StartOptions{})
		require.NoError(b, err)
		require.NoError(b, tx.Commit())
		committed := time.Now()
		select {
		case at := <-called:
			// Commit returned: the notification is on its way.
			lat = append(lat, max(at.Sub(committed), 0))
		case <-time.After(10 * time.Second):
			b.Fatal("no handler call")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}
