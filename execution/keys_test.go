package execution_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// Items, item executions and their history get time-ordered (version 7) keys
// on every path: the ent client (uuid.NewV7), COPY (AddItems), INSERT ...
// SELECT (StartRun), raw SQL and the history trigger (runledger_uuidv7()).
func TestTimeOrderedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 5)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	claimed, err := b.exec.Claim(ctx, "w", 5, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 5)
	results := make([]execution.Result, len(claimed))
	for i, c := range claimed {
		results[i] = execution.Result{ID: c.ID, Payload: json.RawMessage(`{}`)}
	}
	_, err = b.exec.Complete(ctx, "w", results)
	require.NoError(t, err)

	// The ent client makes them itself.
	it, err := b.db.Item.Create().SetBatch(b.batches[0]).SetSequenceNumber(99).SetPayload(map[string]any{"n": 99}).Save(ctx)
	require.NoError(t, err)
	ie, err := b.db.ItemExecution.Create().SetRunID(run.ID).SetAutomationID(b.auto.ID).SetBatchExecutionID(claimed[0].BatchExecutionID).
		SetItem(it).SetStatus(runledger.StatusQueued).Save(ctx)
	require.NoError(t, err)
	h, err := b.db.ItemStateHistory.Create().SetItemExecution(ie).SetNewStatus(runledger.StatusQueued).Save(ctx)
	require.NoError(t, err)
	for _, id := range []uuid.UUID{it.ID, ie.ID, h.ID} {
		require.EqualValues(t, 7, id.Version(), "client-made %s", id)
	}

	// Raw SQL gets the database's default.
	var raw uuid.UUID
	require.NoError(t, b.db.SQL().QueryRowContext(ctx,
		`INSERT INTO item (batch_id, sequence_number) VALUES ($1, 100) RETURNING id`, b.batches[0].ID).Scan(&raw))
	require.EqualValues(t, 7, raw.Version(), "raw SQL %s", raw)

	// COPY, INSERT ... SELECT and the history trigger: every key of the tables.
	for _, q := range []string{
		`SELECT id FROM item`,
		`SELECT id FROM item_execution`,
		`SELECT id FROM item_state_history`,
	} {
		ids := queryIDs(t, b, q)
		require.NotEmpty(t, ids, q)
		for _, id := range ids {
			require.EqualValues(t, 7, id.Version(), "%s: %s", q, id)
		}
	}
	var history int
	require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_state_history`).Scan(&history))
	require.Equal(t, 5*3+2, history, "queued, running, succeeded for the five; the client's queued and its own row")
}

func queryIDs(t *testing.T, b *bundle, q string) []uuid.UUID {
	t.Helper()
	rows, err := b.db.SQL().QueryContext(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}
