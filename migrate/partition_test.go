package migrate_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	amigrate "ariga.io/atlas/sql/migrate"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/dberr"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
	"github.com/runledger/runledger/internal/layout"
	"github.com/runledger/runledger/migrate"
)

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

// plainDB returns a database migrated with the plain layout, whatever
// RUNLEDGER_TEST_LAYOUT says.
func plainDB(t *testing.T) (*db.DB, string) {
	t.Helper()
	ctx := context.Background()
	url := dbtest.EmptyURL(t)
	raw := openSQL(t, url)
	_, err := migrate.Apply(ctx, raw, embedded(t), migrate.ApplyOptions{})
	require.NoError(t, err)
	d, err := db.Open(ctx, db.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d, url
}

func TestPartitionConvertsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := plainDB(t)
	q := d.SQL()
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 3})
	// One item execution from three months ago: its month gets a partition.
	old := g.ItemExecutions[0]
	past := layout.MonthStart(time.Now()).AddDate(0, -3, 0).Add(36 * time.Hour)
	_, err := q.ExecContext(ctx, `DELETE FROM item_execution WHERE id = $1`, old.ID)
	require.NoError(t, err)
	oldID := v7At(t, past)
	_, err = q.ExecContext(ctx, `INSERT INTO item_execution (id, run_id, batch_execution_id, item_id, status) VALUES ($1, $2, $3, $4, 'queued')`,
		oldID, g.Run.ID, g.BatchExecutions[0].ID, old.ItemID)
	require.NoError(t, err)
	counts := func() (ie, h, sc int64) {
		require.NoError(t, q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM item_execution), (SELECT count(*) FROM item_state_history),
			(SELECT coalesce(sum(delta), 0) FROM status_count)`).Scan(&ie, &h, &sc))
		return
	}
	ie0, h0, sc0 := counts()

	kind, err := migrate.Layout(ctx, q)
	require.NoError(t, err)
	require.Equal(t, migrate.LayoutPlain, kind)
	res, err := migrate.Partition(ctx, q, migrate.PartitionOptions{Ahead: 2})
	require.NoError(t, err)
	require.False(t, res.Already)
	require.Equal(t, ie0, res.ItemExecutions)
	require.Equal(t, h0, res.History)
	require.Len(t, res.Months, 6, "three months back to two ahead")
	require.Equal(t, layout.MonthStart(past), res.Months[0])
	kind, err = migrate.Layout(ctx, q)
	require.NoError(t, err)
	require.Equal(t, migrate.LayoutPartitioned, kind)
	ie1, h1, sc1 := counts()
	require.Equal(t, [3]int64{ie0, h0, sc0}, [3]int64{ie1, h1, sc1}, "rows moved, no trigger fired")
	var part string
	require.NoError(t, q.QueryRowContext(ctx, `SELECT tableoid::regclass::text FROM item_execution WHERE id = $1`, oldID).Scan(&part))
	require.Equal(t, layout.Name("item_execution", layout.MonthStart(past)), part)

	again, err := migrate.Partition(ctx, q, migrate.PartitionOptions{})
	require.NoError(t, err)
	require.True(t, again.Already)

	// The migration tooling sees nothing to do.
	st, err := migrate.Status(ctx, q, embedded(t))
	require.NoError(t, err)
	require.Empty(t, st.Pending)
	require.False(t, st.Dirty)
	ar, err := migrate.Apply(ctx, q, embedded(t), migrate.ApplyOptions{Layout: migrate.LayoutPartitioned})
	require.NoError(t, err)
	require.Empty(t, ar.Files)

	// The API works on it, and an id outside every partition is refused.
	_, err = d.ItemExecution.UpdateOneID(g.ItemExecutions[1].ID).SetStatus(runledger.StatusRunning).Save(ctx)
	require.NoError(t, err)
	_, err = q.ExecContext(ctx, `INSERT INTO item_execution (id, run_id, batch_execution_id, item_id, status) VALUES ($1, $2, $3, $4, 'queued')`,
		v7At(t, time.Now().AddDate(1, 0, 0)), g.Run.ID, g.BatchExecutions[0].ID, old.ItemID)
	require.ErrorContains(t, err, "no partition")
}

// TestPartitionGuardsOnPartitions aims raw statements at the partitions
// directly: the copies of the parents' statement triggers and the cloned
// row triggers keep every guard.
func TestPartitionGuardsOnPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := plainDB(t)
	q := d.SQL()
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 2})
	_, err := migrate.Partition(ctx, q, migrate.PartitionOptions{})
	require.NoError(t, err)
	month := layout.MonthStart(time.Now())
	iePart, hPart := layout.Name("item_execution", month), layout.Name("item_state_history", month)

	var h0 int64
	require.NoError(t, q.QueryRowContext(ctx, `SELECT count(*) FROM item_state_history`).Scan(&h0))
	// History is immutable through its partition too.
	_, err = q.ExecContext(ctx, `UPDATE `+hPart+` SET new_status = 'failed'`)
	require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrImmutable)
	_, err = q.ExecContext(ctx, `DELETE FROM `+hPart)
	require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrImmutable)
	_, err = q.ExecContext(ctx, `TRUNCATE `+hPart)
	require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrImmutable)
	// An illegal transition is refused (the row trigger is cloned), and
	// reported on the parent's name.
	_, err = q.ExecContext(ctx, `UPDATE `+iePart+` SET status = 'succeeded' WHERE id = $1`, g.ItemExecutions[0].ID)
	require.NoError(t, err)
	_, err = q.ExecContext(ctx, `UPDATE `+iePart+` SET status = 'running' WHERE id = $1`, g.ItemExecutions[0].ID)
	var te *runledger.TransitionError
	require.ErrorAs(t, dberr.Translate(ctx, err), &te)
	require.Equal(t, "item_execution", te.Table)
	// History and counts are written for a statement aimed at a partition.
	var h1, succeeded int64
	require.NoError(t, q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM item_state_history),
		(SELECT coalesce(sum(delta), 0) FROM status_count WHERE status = 'succeeded')`).Scan(&h1, &succeeded))
	require.Equal(t, h0+1, h1)
	require.Equal(t, int64(1), succeeded)
	_, err = q.ExecContext(ctx, `DELETE FROM `+iePart+` WHERE id = $1`, g.ItemExecutions[0].ID)
	require.NoError(t, err)
	require.NoError(t, q.QueryRowContext(ctx, `SELECT coalesce(sum(delta), 0) FROM status_count WHERE status = 'succeeded'`).Scan(&succeeded))
	require.Equal(t, int64(0), succeeded, "the count trigger ran for a DELETE on the partition")
	// A wrong automation is refused on a direct insert as well.
	_, err = q.ExecContext(ctx, `INSERT INTO `+iePart+` (run_id, batch_execution_id, item_id, automation_id, status) VALUES ($1, $2, $3, gen_random_uuid(), 'queued')`,
		g.Run.ID, g.BatchExecutions[0].ID, g.ItemExecutions[0].ItemID)
	require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrInvalid)
	// Partitions carry no grants but their owner's.
	var grants int
	require.NoError(t, q.QueryRowContext(ctx, `SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.relname = $1 AND a.grantee <> c.relowner`, iePart).Scan(&grants))
	require.Zero(t, grants)
}

func TestPartitionRefusesNonV7Ids(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := plainDB(t)
	q := d.SQL()
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	ie := g.ItemExecutions[0]
	_, err := q.ExecContext(ctx, `DELETE FROM item_execution WHERE id = $1`, ie.ID)
	require.NoError(t, err)
	_, err = q.ExecContext(ctx, `INSERT INTO item_execution (id, run_id, batch_execution_id, item_id, status) VALUES (gen_random_uuid(), $1, $2, $3, 'queued')`,
		g.Run.ID, g.BatchExecutions[0].ID, ie.ItemID)
	require.NoError(t, err)
	_, err = migrate.Partition(ctx, q, migrate.PartitionOptions{})
	require.ErrorContains(t, err, "not version 7")
	kind, err := migrate.Layout(ctx, q)
	require.NoError(t, err)
	require.Equal(t, migrate.LayoutPlain, kind, "rolled back whole")
}

// TestPartitionLaterMigration applies a later file that adds a column and a
// statement trigger to item_execution: the column reaches every partition
// and Apply copies the trigger onto them.
func TestPartitionLaterMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := plainDB(t)
	q := d.SQL()
	_, err := migrate.Partition(ctx, q, migrate.PartitionOptions{Ahead: 1})
	require.NoError(t, err)
	files, err := embedded(t).Files()
	require.NoError(t, err)
	dir := &amigrate.MemDir{}
	require.NoError(t, dir.CopyFiles(files))
	require.NoError(t, dir.WriteFile("20991231000000_later.sql", []byte(`ALTER TABLE item_execution ADD COLUMN later integer NULL;
CREATE OR REPLACE FUNCTION later_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER later_noop AFTER INSERT ON item_execution FOR EACH STATEMENT EXECUTE FUNCTION later_noop();
`)))
	require.NoError(t, migrate.Hash(dir))
	res, err := migrate.Apply(ctx, q, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	require.Len(t, res.Files, 1)
	var parts, withCol, withTrigger int
	require.NoError(t, q.QueryRowContext(ctx, `SELECT count(*),
		count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.inhrelid AND a.attname = 'later')),
		count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = i.inhrelid AND g.tgname = 'later_noop'))
		FROM pg_inherits i WHERE i.inhparent = 'item_execution'::regclass`).Scan(&parts, &withCol, &withTrigger))
	require.Equal(t, 2, parts)
	require.Equal(t, parts, withCol)
	require.Equal(t, parts, withTrigger)
}
