package execution_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/layout"
	"github.com/runledger/runledger/migrate"
)

// partitioned sets b's database to the partitioned layout, whichever layout
// the test databases have.
func partitioned(t *testing.T, b *bundle) {
	t.Helper()
	_, err := migrate.Partition(context.Background(), b.db.SQL(), migrate.PartitionOptions{})
	require.NoError(t, err)
}

// months lists the months that have partitions.
func months(t *testing.T, b *bundle) []time.Time {
	t.Helper()
	parts, err := layout.Partitions(context.Background(), b.db.SQL())
	require.NoError(t, err)
	var out []time.Time
	for _, p := range parts {
		require.NotEmpty(t, p.History, "month %s has both partitions", p.Month)
		out = append(out, p.Month)
	}
	return out
}

// dropFuture drops the partitions of the months after the current one, as
// if nobody had created them.
func dropFuture(t *testing.T, b *bundle) {
	t.Helper()
	ctx := context.Background()
	current := layout.MonthStart(time.Now())
	parts, err := layout.Partitions(ctx, b.db.SQL())
	require.NoError(t, err)
	for _, p := range parts {
		if p.Month.After(current) {
			for _, s := range []string{
				`ALTER TABLE item_state_history DETACH PARTITION ` + p.History, `DROP TABLE ` + p.History,
				`ALTER TABLE item_execution DETACH PARTITION ` + p.ItemExecution, `DROP TABLE ` + p.ItemExecution,
			} {
				_, err := b.db.SQL().ExecContext(ctx, s)
				require.NoError(t, err)
			}
		}
	}
	require.Equal(t, current, months(t, b)[len(months(t, b))-1])
}

func monthsFrom(first time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = first.AddDate(0, i, 0)
	}
	return out
}

func TestEnsurePartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	partitioned(t, b)
	dropFuture(t, b)
	current := layout.MonthStart(time.Now())

	made, err := b.exec.EnsurePartitions(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, monthsFrom(current.AddDate(0, 1, 0), 2), made)
	made, err = b.exec.EnsurePartitions(ctx, 2)
	require.NoError(t, err)
	require.Empty(t, made, "nothing missing")
	// The new partitions carry the guards' statement triggers.
	var n int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_trigger
		WHERE tgrelid = to_regclass($1) AND tgname = 'item_execution_history_insert'`,
		layout.Name("item_execution", current.AddDate(0, 2, 0))).Scan(&n))
	require.Equal(t, 1, n)
}

// TestRunnerCreatesPartitions: the elected maintainer creates the coming
// months' partitions; without them an item execution of those months could
// not be inserted (there is no default partition).
func TestRunnerCreatesPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	partitioned(t, b)
	dropFuture(t, b)
	next := layout.MonthStart(time.Now()).AddDate(0, 1, 0)
	_, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	_, err = b.db.SQL().ExecContext(ctx, `INSERT INTO item_execution (id, run_id, batch_execution_id, item_id, status)
		SELECT $1, run_id, batch_execution_id, item_id, 'queued' FROM item_execution LIMIT 1`, v7At(t, next.Add(time.Hour)))
	require.ErrorContains(t, err, "no partition", "next month has no partition yet")

	ws := execution.NewWorkers()
	ws.Handle(b.auto.Name, execution.HandlerFunc(func(context.Context, execution.Claimed) (json.RawMessage, error) { return nil, nil }), execution.HandlerOptions{})
	startRunner(t, b, ws, execution.RunnerOptions{Name: "maintainer", MaintenanceInterval: 50 * time.Millisecond, PartitionsAhead: 2})
	want := layout.MonthStart(time.Now()).AddDate(0, 2, 0)
	waitFor(t, "the maintainer to create two months ahead", func() bool {
		m := months(t, b)
		return !m[len(m)-1].Before(want)
	})
	require.Contains(t, months(t, b), next)
}

// v7At returns a random version 7 UUID of instant at.
func v7At(t *testing.T, at time.Time) uuid.UUID {
	t.Helper()
	u := layout.Bound(at)
	_, err := rand.Read(u[6:])
	require.NoError(t, err)
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

func TestDropPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 3)
	partitioned(t, b)
	q := b.db.SQL()
	current := layout.MonthStart(time.Now())
	ago := func(n int) time.Time { return current.AddDate(0, -n, 0) }
	_, err := layout.Ensure(ctx, q, 3, ago(3)) // the three months before this one
	require.NoError(t, err)

	// Run A lives in month -3, B straddles -3 and -2, C is in -2.
	start := func() uuid.UUID {
		r, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		return r.ID
	}
	a, bb, c := start(), start(), start()
	move := func(run uuid.UUID, status string, monthsAgo ...int) {
		var list string
		var ids []string
		require.NoError(t, q.QueryRowContext(ctx, `SELECT string_agg(id::text, ',' ORDER BY id) FROM item_execution WHERE run_id = $1`, run).Scan(&list))
		ids = strings.Split(list, ",")
		for i, id := range ids {
			at := ago(monthsAgo[i%len(monthsAgo)]).Add(24 * time.Hour)
			_, err := q.ExecContext(ctx, `WITH gone AS (DELETE FROM item_execution WHERE id = $1 RETURNING *)
				INSERT INTO item_execution (id, run_id, batch_execution_id, item_id, status)
				SELECT $2, run_id, batch_execution_id, item_id, $3 FROM gone`, id, v7At(t, at), status)
			require.NoError(t, err)
		}
	}
	move(a, "succeeded", 3)
	move(bb, "succeeded", 3, 2)
	move(c, "queued", 2)
	_, err = q.ExecContext(ctx, `UPDATE run SET status = 'succeeded', finished_at = now() - interval '1 hour' WHERE id = ANY($1)`,
		"{"+a.String()+","+bb.String()+"}")
	require.NoError(t, err)
	count := func(query string, args ...any) int {
		var n int
		require.NoError(t, q.QueryRowContext(ctx, query, args...).Scan(&n))
		return n
	}
	histC := count(`SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id WHERE ie.run_id = $1`, c)
	require.Positive(t, histC)

	res, err := b.exec.DropPartitions(ctx, time.Now())
	require.NoError(t, err)
	require.Equal(t, []time.Time{ago(3), ago(1)}, res.Months, "month -3 (finished runs) and the empty month -1")
	require.Equal(t, []time.Time{ago(2)}, res.Kept, "month -2 holds run C, unfinished")
	require.Equal(t, int64(2), res.Runs)
	require.Equal(t, 0, count(`SELECT count(*) FROM run WHERE id = ANY($1)`, "{"+a.String()+","+bb.String()+"}"))
	require.Equal(t, 0, count(`SELECT count(*) FROM item_execution WHERE run_id = $1`, bb), "B's rows in month -2 went with it")
	require.Equal(t, 3, count(`SELECT count(*) FROM item_execution WHERE run_id = $1`, c))
	require.Equal(t, histC, count(`SELECT count(*) FROM item_state_history h JOIN item_execution ie ON ie.id = h.item_execution_id WHERE ie.run_id = $1`, c))
	require.NotContains(t, months(t, b), ago(3))
	require.Contains(t, months(t, b), current, "the current month is never dropped")
	p, err := b.exec.Progress(ctx, c)
	require.NoError(t, err)
	require.EqualValues(t, 3, p.Counts.Total())

	// Once C is finished, its month goes too; a cutoff before C's finish keeps it.
	_, err = q.ExecContext(ctx, `UPDATE item_execution SET status = 'succeeded' WHERE run_id = $1`, c)
	require.NoError(t, err)
	_, err = q.ExecContext(ctx, `UPDATE run SET status = 'succeeded', finished_at = now() WHERE id = $1`, c)
	require.NoError(t, err)
	res, err = b.exec.DropPartitions(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Empty(t, res.Months)
	require.Equal(t, []time.Time{ago(2)}, res.Kept)
	res, err = b.exec.DropPartitions(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []time.Time{ago(2)}, res.Months)
	require.Equal(t, 0, count(`SELECT count(*) FROM run WHERE id = $1`, c))

	// Purge works on the partitioned layout for the rest.
	d := start()
	_, err = q.ExecContext(ctx, `UPDATE item_execution SET status = 'succeeded' WHERE run_id = $1`, d)
	require.NoError(t, err)
	_, err = q.ExecContext(ctx, `UPDATE run SET status = 'succeeded', finished_at = now() WHERE id = $1`, d)
	require.NoError(t, err)
	pr, err := b.exec.Purge(ctx, time.Now().Add(time.Minute), execution.PurgeOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1), pr.Runs)
	require.Equal(t, int64(3), pr.ItemExecutions)
}

func TestPartitionCallsOnPlainLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.EmptyURL(t)
	d, err := db.Open(ctx, db.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	dir, err := migrate.Embedded()
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, d.SQL(), dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	x := execution.New(d, execution.Options{})
	t.Cleanup(func() { _ = x.Close() })
	ok, err := x.Partitioned(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	made, err := x.EnsurePartitions(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, made)
	_, err = x.DropPartitions(ctx, time.Now())
	require.ErrorIs(t, err, execution.ErrPlainLayout)
}
