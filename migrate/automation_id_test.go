package migrate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/dberr"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
	"github.com/runledger/runledger/migrate"
)

// item_execution.automation_id is a denormalised copy of run.automation_id:
// the database fills it, refuses a wrong one and never lets it change.
func TestItemExecutionAutomationID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 3})
	other := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	require.Equal(t, g.Automation.ID, g.ItemExecutions[0].AutomationID)

	t.Run("filled when left out", func(t *testing.T) {
		t.Parallel()
		var runID, got string
		require.NoError(t, d.SQL().QueryRowContext(ctx, `INSERT INTO run (automation_id) VALUES ($1) RETURNING id`, g.Automation.ID).Scan(&runID))
		require.NoError(t, d.SQL().QueryRowContext(ctx, `INSERT INTO item_execution (run_id, batch_execution_id, item_id, status)
			VALUES ($1, $2, $3, 'queued') RETURNING automation_id`, runID, g.BatchExecutions[0].ID, g.Items[0][0].ID).Scan(&got))
		require.Equal(t, g.Automation.ID.String(), got)
	})

	t.Run("a wrong one is refused", func(t *testing.T) {
		t.Parallel()
		var runID uuid.UUID
		require.NoError(t, d.SQL().QueryRowContext(ctx, `INSERT INTO run (automation_id) VALUES ($1) RETURNING id`, g.Automation.ID).Scan(&runID))
		_, err := d.SQL().ExecContext(ctx, `INSERT INTO item_execution (run_id, automation_id, batch_execution_id, item_id, status)
			VALUES ($1, $2, $3, $4, 'queued')`, runID, other.Automation.ID, g.BatchExecutions[0].ID, g.Items[0][1].ID)
		code, constraint := pqCode(t, err)
		require.Equal(t, "23514", code)
		require.Equal(t, "ck_item_execution_automation", constraint)
		require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrInvalid)
		_, err = d.ItemExecution.Create().SetRunID(runID).SetAutomationID(other.Automation.ID).
			SetBatchExecution(g.BatchExecutions[0]).SetItem(g.Items[0][2]).SetStatus(runledger.StatusQueued).Save(ctx)
		require.ErrorIs(t, err, runledger.ErrInvalid, "through the client too")
	})

	t.Run("never changes", func(t *testing.T) {
		t.Parallel()
		_, err := d.SQL().ExecContext(ctx, `UPDATE item_execution SET automation_id = $1 WHERE id = $2`, other.Automation.ID, g.ItemExecutions[2].ID)
		_, constraint := pqCode(t, err)
		require.Equal(t, "ck_item_execution_automation", constraint)
		_, err = d.SQL().ExecContext(ctx, `UPDATE item_execution SET automation_id = automation_id, status = 'running' WHERE id = $1`, g.ItemExecutions[2].ID)
		require.NoError(t, err, "setting the same value is no change")
	})
}

// TestItemExecutionAutomationIDUpgrade applies the migrations up to the one
// before automation_id existed, records executions, then applies the rest:
// the existing rows get their run's automation, and nothing else changes.
func TestItemExecutionAutomationIDUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openSQL(t, dbtest.EmptyURL(t))
	dir := embedded(t)
	files, err := dir.Files()
	require.NoError(t, err)
	before := ""
	for _, f := range files {
		if strings.HasSuffix(f.Name(), "_item_execution_automation.sql") {
			break
		}
		before = f.Version()
	}
	require.NotEmpty(t, before)
	_, err = migrate.Apply(ctx, d, dir, migrate.ApplyOptions{ToVersion: before})
	require.NoError(t, err)

	// Two automations, a run of each with two item executions.
	_, err = d.ExecContext(ctx, `
		WITH a AS (INSERT INTO automation (name) SELECT 'a' || s FROM generate_series(1, 2) s RETURNING id, name),
		b AS (INSERT INTO batch (automation_id, name) SELECT id, 'b' FROM a RETURNING id, automation_id),
		i AS (INSERT INTO item (batch_id, sequence_number) SELECT b.id, s FROM b, generate_series(1, 2) s RETURNING id, batch_id),
		r AS (INSERT INTO run (automation_id, status) SELECT id, 'queued' FROM a RETURNING id, automation_id),
		be AS (INSERT INTO batch_execution (run_id, batch_id, status) SELECT r.id, b.id, 'queued' FROM r JOIN b USING (automation_id) RETURNING id, run_id, batch_id)
		INSERT INTO item_execution (run_id, batch_execution_id, item_id, status)
		SELECT be.run_id, be.id, i.id, 'queued' FROM be JOIN i USING (batch_id)`)
	require.NoError(t, err)
	var versions int
	require.NoError(t, d.QueryRowContext(ctx, `SELECT sum(version) FROM item_execution`).Scan(&versions))

	_, err = migrate.Apply(ctx, d, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	var rows, right, versionsAfter int
	require.NoError(t, d.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE ie.automation_id = r.automation_id), sum(ie.version)
		FROM item_execution ie JOIN run r ON r.id = ie.run_id`).Scan(&rows, &right, &versionsAfter))
	require.Equal(t, 4, rows)
	require.Equal(t, 4, right)
	require.Equal(t, versions, versionsAfter, "filling the new column is not an update of the rows")
	var nullable string
	require.NoError(t, d.QueryRowContext(ctx, `SELECT is_nullable FROM information_schema.columns
		WHERE table_name = 'item_execution' AND column_name = 'automation_id'`).Scan(&nullable))
	require.Equal(t, "NO", nullable)
}
