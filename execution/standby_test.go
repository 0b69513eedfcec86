package execution_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/migrate"
)

// TestReadsOnStandby burns a run down on a private primary, leaving its
// status_count ledger uncompacted (more than 512 rows), and reads it from a
// streaming standby made with pg_basebackup -R: Progress, the graph queries
// of inspect and migrate status answer there what they answer on the
// primary, write nothing, and report the standby's staleness;
// CompactProgress does nothing on the standby.
func TestReadsOnStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := pgserver.ForTest(t, pgserver.Options{Settings: map[string]string{"fsync": "off"}})
	primaryURL := createMigrated(t, primary, "runledger")
	standby, err := primary.Standby(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = standby.Close() })
	standbyURL := standby.URL("runledger")

	d, err := db.Open(ctx, db.Config{URL: primaryURL, ReadURL: standbyURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	onPrimary, err := db.Open(ctx, db.Config{URL: primaryURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = onPrimary.Close() })
	x := execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	t.Cleanup(func() { _ = x.Close() })
	xp := execution.New(onPrimary, execution.Options{})
	t.Cleanup(func() { _ = xp.Close() })

	// 12 batches of 25 items; items whose n is a multiple of 7 fail every
	// attempt (2 allowed).
	a, err := d.Automation.Create().SetName("standby").Save(ctx)
	require.NoError(t, err)
	for i := range 12 {
		bt, err := d.Batch.Create().SetAutomation(a).SetName(fmt.Sprintf("batch-%02d", i)).Save(ctx)
		require.NoError(t, err)
		items := make([]execution.NewItem, 25)
		for j := range items {
			items[j] = execution.NewItem{SequenceNumber: int32(j), Payload: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i*25+j))}
		}
		_, err = x.AddItems(ctx, bt.ID, execution.Items(items))
		require.NoError(t, err)
	}
	r, err := x.StartRun(ctx, a.ID, execution.StartOptions{MaxAttempts: 2})
	require.NoError(t, err)

	// Burn down with one report per item: many small statements, so many
	// ledger rows, while each batch execution stays under the roll-up's
	// compaction threshold.
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := x.Claim(ctx, "w", 4, time.Minute)
		require.NoError(t, err)
		for _, c := range got {
			var p struct{ N int }
			require.NoError(t, json.Unmarshal(c.Payload, &p))
			if p.N%7 == 0 {
				_, err = x.Fail(ctx, "w", []execution.Failure{{ID: c.ID, Error: fmt.Sprintf("item %d refuses", p.N)}})
			} else {
				_, err = x.Complete(ctx, "w", []execution.Result{{ID: c.ID}})
			}
			require.NoError(t, err)
		}
		if len(got) > 0 {
			continue
		}
		cur, err := d.Run.Get(ctx, r.ID)
		require.NoError(t, err)
		if cur.Status.Terminal() {
			break
		}
		require.True(t, time.Now().Before(deadline), "run did not finish")
		time.Sleep(2 * time.Millisecond) // retries wait for their backoff
	}
	waitForReplay(t, d.SQL(), d.Reader().SQL())

	var ledger int
	require.NoError(t, d.Reader().SQL().QueryRowContext(ctx, `SELECT count(*) FROM status_count WHERE run_id = $1`, r.ID).Scan(&ledger))
	require.Greater(t, ledger, 512, "the ledger on the standby is uncompacted")

	// Progress: the same counts on both, with the standby's staleness.
	{
		want, err := xp.Progress(ctx, r.ID)
		require.NoError(t, err)
		require.Nil(t, want.Staleness)
		require.Equal(t, runledger.StatusFailed, want.Status)
		require.EqualValues(t, 300, want.Counts.Total())
		require.EqualValues(t, 43, want.Counts[runledger.StatusFailed])
		got, err := x.Progress(ctx, r.ID)
		require.NoError(t, err)
		require.NotNil(t, got.Staleness)
		require.True(t, got.Staleness.Standby)
		require.True(t, got.Staleness.CaughtUp, "%s", got.Staleness)
		require.False(t, got.Staleness.LastReplayedAt.IsZero())
		require.Zero(t, got.Staleness.Lag)
		got.Staleness = nil
		require.Equal(t, want, got)
		b, err := json.Marshal(got)
		require.NoError(t, err)
		require.Contains(t, string(b), `"run_id":"`+r.ID.String()+`"`)
	}

	// The graph queries of inspect: the same tree on both.
	{
		load := func(c *ent.Client) string {
			got, err := c.Run.Query().Where(run.ID(r.ID)).
				WithAutomation().
				WithBatchExecutions(func(q *ent.BatchExecutionQuery) {
					q.WithBatch().WithItemExecutions(func(q *ent.ItemExecutionQuery) {
						q.Where(itemexecution.StatusIn(runledger.StatusFailed)).WithItem().
							WithHistory(func(q *ent.ItemStateHistoryQuery) { q.Order(itemstatehistory.ByChangedAt()) })
					})
				}).
				Only(ctx)
			require.NoError(t, err)
			b, err := json.Marshal(got)
			require.NoError(t, err)
			return string(b)
		}
		want := load(onPrimary.Client)
		require.Contains(t, want, "item 7 refuses")
		require.JSONEq(t, want, load(d.Reader().Client))
	}

	// migrate status: the same state on both.
	{
		dir, err := migrate.Embedded()
		require.NoError(t, err)
		want, err := migrate.Status(ctx, d.SQL(), dir)
		require.NoError(t, err)
		got, err := migrate.Status(ctx, d.Reader().SQL(), dir)
		require.NoError(t, err)
		require.NotEmpty(t, got.Current)
		require.Equal(t, want.Current, got.Current)
		require.Equal(t, want.Applied, got.Applied)
		require.Equal(t, want.Dirty, got.Dirty)
		require.Empty(t, got.Pending)
	}

	// CompactProgress: a no-op on the standby, folds the ledger on the primary.
	{
		replica, err := db.OpenReplica(ctx, db.Config{URL: standbyURL})
		require.NoError(t, err)
		defer func() { _ = replica.Close() }()
		xr := execution.New(replica, execution.Options{})
		defer func() { _ = xr.Close() }()
		require.NoError(t, xr.CompactProgress(ctx))

		before, err := xp.Progress(ctx, r.ID)
		require.NoError(t, err)
		require.NoError(t, x.CompactProgress(ctx))
		waitForReplay(t, d.SQL(), d.Reader().SQL())
		var after int
		require.NoError(t, d.Reader().SQL().QueryRowContext(ctx, `SELECT count(*) FROM status_count WHERE run_id = $1`, r.ID).Scan(&after))
		require.Less(t, after, 12*10+1, "at most one row per batch execution and status")
		got, err := x.Progress(ctx, r.ID)
		require.NoError(t, err)
		got.Staleness = nil
		require.Equal(t, before, got)
	}
}

// createMigrated creates database name on s, applies the embedded
// migrations to it and returns its URL.
func createMigrated(t *testing.T, s *pgserver.Server, name string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("postgres", s.URL("postgres"))
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	target, err := sql.Open("postgres", s.URL(name))
	require.NoError(t, err)
	defer target.Close()
	dir, err := migrate.Embedded()
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, target, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	return s.URL(name)
}

// waitForReplay waits until the standby behind replica has replayed all
// the WAL the primary has written so far.
func waitForReplay(t *testing.T, primary, replica *sql.DB) {
	t.Helper()
	ctx := context.Background()
	var lsn string
	require.NoError(t, primary.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn))
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done bool
		require.NoError(t, replica.QueryRowContext(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done))
		if done {
			return
		}
		require.True(t, time.Now().Before(deadline), "standby did not replay %s in time", lsn)
		time.Sleep(10 * time.Millisecond)
	}
}
