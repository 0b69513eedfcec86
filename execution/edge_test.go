package execution_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// Defect 5: a run over zero items is finished at StartRun, whether its
// automation has no batches or only empty ones.
func TestZeroItemRunFinishesAtStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, sizes := range [][]int{nil, {0}, {0, 0}} {
		b := setup(t, execution.Options{}, sizes...)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		require.Equal(t, runledger.StatusSucceeded, run.Status, "batches %v", sizes)
		require.NotNil(t, run.StartedAt)
		require.NotNil(t, run.FinishedAt)
		p, err := b.exec.Progress(ctx, run.ID)
		require.NoError(t, err)
		require.Zero(t, p.Counts.Total())
		for _, bp := range p.Batches {
			require.Equal(t, runledger.StatusSucceeded, bp.Status)
		}
		_, err = b.exec.CancelRun(ctx, run.ID, "too late")
		require.ErrorIs(t, err, runledger.ErrIllegalTransition, "a finished run is not cancelled")
	}
}

// Defect 7: lengths are counted in characters, as PostgreSQL counts them;
// deep payloads are refused as too deep.
func TestLengthsAndDepth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 1)

	name := strings.Repeat("é", 200)
	a, err := b.db.Automation.Create().SetName(name).Save(ctx)
	require.NoError(t, err, "200 characters fit varchar(200), however many bytes")
	_, err = b.db.Batch.Create().SetAutomation(a).SetName(name).Save(ctx)
	require.NoError(t, err)
	_, err = b.db.Automation.Create().SetName(name + "é").Save(ctx)
	require.ErrorIs(t, err, runledger.ErrInvalid)
	_, err = b.db.Automation.Create().SetName("x").SetCreatedBy(strings.Repeat("é", 101)).Save(ctx)
	require.ErrorIs(t, err, runledger.ErrInvalid)

	_, err = b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: strings.Repeat("ü", 100)})
	require.NoError(t, err)
	_, err = b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: strings.Repeat("ü", 101)})
	require.ErrorIs(t, err, runledger.ErrInvalid)
	worker := strings.Repeat("ω", 100)
	got, err := b.exec.Claim(ctx, worker, 1, time.Minute)
	require.NoError(t, err, "a 100-character worker name fits claimed_by varchar(100)")
	require.Len(t, got, 1)
	_, err = b.exec.Claim(ctx, worker+"ω", 1, time.Minute)
	require.ErrorIs(t, err, runledger.ErrInvalid)

	deep := func(n int) json.RawMessage {
		return json.RawMessage(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	}
	for _, n := range []int{129, 10000} {
		_, err = b.exec.Complete(ctx, worker, []execution.Result{{ID: got[0].ID, Payload: deep(n)}})
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "payload is nested deeper than 128 levels", ie.Reason)

		free, err := b.db.Automation.Create().SetName("free-" + uuid.NewString()[:8]).Save(ctx)
		require.NoError(t, err)
		fb, err := b.db.Batch.Create().SetAutomation(free).SetName("b").Save(ctx)
		require.NoError(t, err)
		for _, batch := range []uuid.UUID{b.batches[0].ID, fb.ID} { // with and without item_schema
			_, err = b.exec.AddItems(ctx, batch, execution.Items([]execution.NewItem{{SequenceNumber: 100, Payload: deep(n)}}))
			require.ErrorAs(t, err, &ie)
			require.Equal(t, "payload is nested deeper than 128 levels", ie.Reason)
		}
	}
	// The ent client's create paths refuse a deep payload the same way.
	nested := map[string]any{"leaf": 1}
	for range 200 {
		nested = map[string]any{"a": nested}
	}
	_, err = b.db.Item.Create().SetBatchID(b.batches[0].ID).SetSequenceNumber(500).SetPayload(nested).Save(ctx)
	var ie *runledger.InvalidError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "payload is nested deeper than 128 levels", ie.Reason)
	_, err = b.db.Batch.Create().SetAutomation(b.auto).SetName("deep").SetPayload(nested).Save(ctx)
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "payload is nested deeper than 128 levels", ie.Reason)

	rep, err := b.exec.Complete(ctx, worker, []execution.Result{{ID: got[0].ID, Payload: deep(128)}})
	require.NoError(t, err)
	require.Len(t, rep.Succeeded, 1)
	_, err = b.exec.Complete(ctx, worker, []execution.Result{{ID: uuid.New(), Payload: json.RawMessage(`{"a":`)}})
	require.ErrorIs(t, err, runledger.ErrInvalid)
}
