package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/runorchestration"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/report"
)

// TestLoadRun: a run as `inspect run` shows it, with what ent's graph shows
// of soft-deleted rows: a detached orchestration link is listed, a
// soft-deleted run is not found unless the context asks for inactive rows.
func TestLoadRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	x := execution.New(d, execution.Options{})
	a, err := d.Automation.Create().SetName("load-run").Save(ctx)
	require.NoError(t, err)
	for _, name := range []string{"south", "North", "east"} {
		b, err := d.Batch.Create().SetAutomation(a).SetName(name).Save(ctx)
		require.NoError(t, err)
		_, err = x.AddItems(ctx, b.ID, execution.Items([]execution.NewItem{{SequenceNumber: 1}, {SequenceNumber: 0}}))
		require.NoError(t, err)
	}
	r, err := x.StartRun(ctx, a.ID, execution.StartOptions{CorrelationID: "c-1"})
	require.NoError(t, err)
	eng, err := x.RegisterEngine(ctx, "ci", "jenkins")
	require.NoError(t, err)
	var insts []*ent.OrchestrationInstance
	for _, ext := range []string{"build-1", "build-2"} {
		inst, err := x.AttachInstance(ctx, r.ID, eng.ID, ext, nil)
		require.NoError(t, err)
		insts = append(insts, inst)
	}
	_, err = x.SyncInstance(ctx, insts[0].ID, "building", time.Now())
	require.NoError(t, err)
	got, err := x.Claim(ctx, "w", 1, time.Minute)
	require.NoError(t, err)
	_, err = x.Fail(ctx, "w", []execution.Failure{{ID: got[0].ID, Error: "boom"}})
	require.NoError(t, err)

	rep, err := report.LoadRun(ctx, d, x, r.ID)
	require.NoError(t, err)
	require.Equal(t, r.ID, rep.ID)
	require.Equal(t, report.Definition{ID: a.ID, Name: "load-run", Active: true}, rep.Automation)
	require.Equal(t, "c-1", rep.CorrelationID)
	require.Equal(t, int64(6), rep.Total)
	require.Equal(t, report.Counts{runledger.StatusQueued: 5, runledger.StatusRetrying: 1}, rep.Counts)
	require.Nil(t, rep.Staleness)
	require.Len(t, rep.Orchestrations, 2)
	require.Equal(t, "build-1", rep.Orchestrations[0].ExternalID)
	require.Equal(t, "building", rep.Orchestrations[0].State)
	require.Equal(t, "jenkins", rep.Orchestrations[0].EngineType)
	names := []string{}
	for _, b := range rep.Batches {
		names = append(names, b.Batch.Name)
		require.Equal(t, report.ListedAll, b.Listed)
		require.Len(t, b.Items, 2)
		require.Equal(t, int32(0), b.Items[0].SequenceNumber, "items by sequence number")
		require.NotEmpty(t, b.Items[0].History)
	}
	require.Equal(t, []string{"North", "east", "south"}, names, "batches by name, byte order")

	// A detached (soft-deleted) orchestration link is still listed.
	n, err := d.RunOrchestration.Delete().Where(runorchestration.OrchestrationInstanceID(insts[1].ID)).Exec(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	again, err := report.LoadRun(ctx, d, x, r.ID)
	require.NoError(t, err)
	require.Equal(t, rep.Orchestrations, again.Orchestrations)

	// A soft-deleted run is not found, unless inactive rows are asked for.
	require.NoError(t, d.Run.DeleteOneID(r.ID).Exec(ctx))
	_, err = report.LoadRun(ctx, d, x, r.ID)
	var nf *report.RunNotFoundError
	require.ErrorAs(t, err, &nf)
	require.ErrorIs(t, err, runledger.ErrNotFound)
	_, err = report.LoadRun(runledger.WithInactive(ctx), d, x, r.ID)
	require.NoError(t, err)
}
