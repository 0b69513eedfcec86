package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
)

// BenchmarkStatusChange100k measures one UPDATE that moves 100k item
// executions from queued to running, with the guards migration's triggers
// (row guard + set-based history), without the history trigger, and with no
// trigger at all. Run: go test ./migrate -run '^$' -bench StatusChange -benchtime 3x
func BenchmarkStatusChange100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	d := dbtest.New(b)
	g := fixture.Build(b, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	_, err := d.SQL().ExecContext(ctx, `
		WITH items AS (
			INSERT INTO item (batch_id, sequence_number) SELECT $1, s FROM generate_series(1, $3::int) s RETURNING id)
		INSERT INTO item_execution (run_id, batch_execution_id, item_id, status)
		SELECT $2, $4, id, 'queued' FROM items`, g.Batches[0].ID, g.Run.ID, n, g.BatchExecutions[0].ID)
	require.NoError(b, err)
	for _, variant := range []struct{ name, disable string }{
		{"all_triggers", ""},
		{"no_history_trigger", "ALTER TABLE item_execution DISABLE TRIGGER item_execution_history_update"},
		{"no_triggers", "ALTER TABLE item_execution DISABLE TRIGGER USER"},
	} {
		b.Run(variant.name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tx, err := d.SQL().BeginTx(ctx, nil)
				require.NoError(b, err)
				if variant.disable != "" {
					_, err = tx.ExecContext(ctx, variant.disable)
					require.NoError(b, err)
				}
				b.StartTimer()
				start := time.Now()
				res, err := tx.ExecContext(ctx, `UPDATE item_execution SET status = 'running' WHERE status = 'queued'`)
				total += time.Since(start)
				b.StopTimer()
				require.NoError(b, err)
				rows, _ := res.RowsAffected()
				require.EqualValues(b, n+1, rows)
				require.NoError(b, tx.Rollback())
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "rows/s")
		})
	}
}
