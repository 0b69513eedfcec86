package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

func TestListRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 2)
	other, err := b.db.Automation.Create().SetName("other-" + uuid.NewString()[:6]).Save(ctx)
	require.NoError(t, err)
	var ids []uuid.UUID
	for i := range 5 {
		r, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: fmt.Sprintf("order-%d", i)})
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	_, err = b.exec.CancelRun(ctx, ids[1], "no")
	require.NoError(t, err)
	empty, err := b.exec.StartRun(ctx, other.ID, execution.StartOptions{})
	require.NoError(t, err)

	t.Run("newest first, keyset pages, counts", func(t *testing.T) {
		t.Parallel()
		var seen []uuid.UUID
		after := ""
		for {
			page, err := b.exec.ListRuns(ctx, execution.RunFilter{Limit: 2, After: after})
			require.NoError(t, err)
			for _, r := range page.Runs {
				seen = append(seen, r.ID)
				if r.ID == ids[0] {
					require.Equal(t, execution.Counts{runledger.StatusQueued: 2}, r.Counts)
					require.Equal(t, b.auto.Name, r.Automation.Name)
					require.Equal(t, "order-0", r.CorrelationID)
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		require.Equal(t, []uuid.UUID{empty.ID, ids[4], ids[3], ids[2], ids[1], ids[0]}, seen)
	})
	t.Run("filters", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			f    execution.RunFilter
			want []uuid.UUID
		}{
			{"status", execution.RunFilter{Statuses: []runledger.ExecutionStatus{runledger.StatusCancelled}}, []uuid.UUID{ids[1]}},
			{"statuses", execution.RunFilter{Statuses: []runledger.ExecutionStatus{runledger.StatusCancelled, runledger.StatusQueued}, Automation: b.auto.Name}, []uuid.UUID{ids[4], ids[3], ids[2], ids[1], ids[0]}},
			{"automation by name", execution.RunFilter{Automation: other.Name}, []uuid.UUID{empty.ID}},
			{"automation by id", execution.RunFilter{Automation: b.auto.ID.String(), Limit: 1}, []uuid.UUID{ids[4]}},
			{"correlation id", execution.RunFilter{CorrelationID: "order-3"}, []uuid.UUID{ids[3]}},
			{"no match", execution.RunFilter{CorrelationID: "order-"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				page, err := b.exec.ListRuns(ctx, tc.f)
				require.NoError(t, err)
				var got []uuid.UUID
				for _, r := range page.Runs {
					got = append(got, r.ID)
				}
				require.Equal(t, tc.want, got)
			})
		}
	})
	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		for _, f := range []execution.RunFilter{
			{After: "nonsense"}, {Limit: -1}, {Limit: execution.MaxPageSize + 1}, {Statuses: []runledger.ExecutionStatus{"bogus"}},
		} {
			_, err := b.exec.ListRuns(ctx, f)
			require.ErrorIs(t, err, runledger.ErrInvalid, "%+v", f)
		}
	})
}

func TestListAutomations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 1)
	var runs []uuid.UUID
	for range 4 {
		r, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		runs = append(runs, r.ID)
	}
	retired, err := b.db.Automation.Create().SetName("retired-" + uuid.NewString()[:6]).Save(ctx)
	require.NoError(t, err)
	require.NoError(t, b.db.Automation.DeleteOne(retired).Exec(ctx))

	page, err := b.exec.ListAutomations(ctx, execution.AutomationFilter{})
	require.NoError(t, err)
	require.Len(t, page.Automations, 1)
	a := page.Automations[0]
	require.Equal(t, b.auto.ID, a.ID)
	require.True(t, a.Active)
	require.Len(t, a.LatestRuns, 3)
	require.Equal(t, []uuid.UUID{runs[3], runs[2], runs[1]}, []uuid.UUID{a.LatestRuns[0].ID, a.LatestRuns[1].ID, a.LatestRuns[2].ID})
	require.Equal(t, execution.Counts{runledger.StatusQueued: 1}, a.LatestRuns[0].Counts)

	page, err = b.exec.ListAutomations(ctx, execution.AutomationFilter{Inactive: true, Limit: 1, LatestRuns: 1})
	require.NoError(t, err)
	require.Len(t, page.Automations, 1)
	require.NotEmpty(t, page.Next)
	require.Len(t, page.Automations[0].LatestRuns, 1)
	page, err = b.exec.ListAutomations(ctx, execution.AutomationFilter{Inactive: true, Limit: 1, After: page.Next})
	require.NoError(t, err)
	require.Len(t, page.Automations, 1)
	require.Equal(t, retired.ID, page.Automations[0].ID)
	require.False(t, page.Automations[0].Active)
	require.Empty(t, page.Automations[0].LatestRuns)
	require.Empty(t, page.Next)

	_, err = b.exec.ListAutomations(ctx, execution.AutomationFilter{After: "x"})
	require.ErrorIs(t, err, runledger.ErrInvalid)
}

func TestRunDetailAndItems(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{}, 4, 3)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{CorrelationID: "c-1"})
	require.NoError(t, err)
	eng, err := b.exec.RegisterEngine(ctx, "jenkins-"+uuid.NewString()[:6], "jenkins")
	require.NoError(t, err)
	_, err = b.exec.AttachInstance(ctx, run.ID, eng.ID, "job#7", nil)
	require.NoError(t, err)
	burn(t, b, map[int32]bool{0: true, 2: true})

	d, err := b.exec.RunDetail(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, runledger.StatusFailed, d.Status)
	require.Contains(t, d.ErrorSummary, "4 of 7 items did not succeed")
	require.Equal(t, execution.Counts{runledger.StatusSucceeded: 3, runledger.StatusFailed: 4}, d.Counts)
	require.Len(t, d.Batches, 2)
	require.Equal(t, "batch-0", d.Batches[0].Batch.Name)
	require.EqualValues(t, 4, d.Batches[0].Total)
	require.EqualValues(t, 7, d.Total)
	require.Equal(t, execution.Counts{runledger.StatusSucceeded: 2, runledger.StatusFailed: 2}, d.Batches[0].Counts)
	require.Len(t, d.Orchestrations, 1)
	require.Equal(t, "job#7", d.Orchestrations[0].ExternalID)
	require.Equal(t, "jenkins", d.Orchestrations[0].EngineType)
	p, err := b.exec.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, p.Counts, d.Counts, "the same counts as Progress")
	_, err = b.exec.RunDetail(ctx, uuid.New())
	require.ErrorIs(t, err, runledger.ErrNotFound)

	// Failed items, two per page, each with its history.
	var got []execution.ItemSummary
	after := ""
	for {
		page, err := b.exec.FailedItems(ctx, run.ID, execution.ItemFilter{Limit: 2, After: after})
		require.NoError(t, err)
		got = append(got, page.Items...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Len(t, got, 4)
	for i, it := range got {
		if i > 0 {
			require.Less(t, got[i-1].ID.String(), it.ID.String())
		}
		require.Equal(t, runledger.StatusFailed, it.Status)
		require.Equal(t, "item failed", it.ErrorMessage)
		require.Contains(t, []int32{0, 2}, it.SequenceNumber)
		var steps []string
		for _, h := range it.History {
			steps = append(steps, string(h.To))
			if h.To != runledger.StatusQueued {
				require.Equal(t, "burner", h.Actor, "actors are recorded")
			}
		}
		require.Equal(t, "queued running failed", strings.Join(steps, " "))
	}
	_, err = b.exec.FailedItems(ctx, uuid.New(), execution.ItemFilter{})
	require.ErrorIs(t, err, runledger.ErrNotFound)
	_, err = b.exec.FailedItems(ctx, run.ID, execution.ItemFilter{After: "x"})
	require.ErrorIs(t, err, runledger.ErrInvalid)

	// One item execution in full.
	it, err := b.exec.ItemExecution(ctx, got[0].ID, 0)
	require.NoError(t, err)
	require.Equal(t, b.auto.Name, it.Automation.Name)
	j, err := json.Marshal(it)
	require.NoError(t, err)
	require.Contains(t, string(j), `"payload":{"n":`)
	require.Contains(t, string(j), `"attempts":1`)
	require.JSONEq(t, fmt.Sprintf(`{"n": %d}`, it.SequenceNumber), string(it.Payload.JSON))
	require.False(t, it.Payload.Truncated)
	require.Nil(t, it.Result.JSON)
	require.Len(t, it.History, 3)
	require.Equal(t, "burner", it.History[2].Actor)
	_, err = b.exec.ItemExecution(ctx, uuid.New(), 0)
	require.ErrorIs(t, err, runledger.ErrNotFound)
}

func TestItemExecutionCapsPayload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{})
	bt, err := b.db.Batch.Create().SetAutomation(b.auto).SetName("big").Save(ctx)
	require.NoError(t, err)
	big := `{"n": 1, "text": "` + strings.Repeat("é", 5000) + `"}`
	_, err = b.exec.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{{SequenceNumber: 0, Payload: json.RawMessage(big)}}))
	require.NoError(t, err)
	run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
	require.NoError(t, err)
	got, err := b.exec.Claim(ctx, "w", 1, time.Minute)
	require.NoError(t, err)
	_, err = b.exec.Complete(ctx, "w", []execution.Result{{ID: got[0].ID, Payload: json.RawMessage(`{"ok": true}`)}})
	require.NoError(t, err)

	it, err := b.exec.ItemExecution(ctx, got[0].ID, 1001)
	require.NoError(t, err)
	require.Equal(t, run.ID, it.RunID)
	require.True(t, it.Payload.Truncated)
	require.Nil(t, it.Payload.JSON)
	require.Greater(t, it.Payload.Size, 10000)
	require.LessOrEqual(t, len(it.Payload.Preview), 1001)
	require.True(t, strings.HasPrefix(it.Payload.Preview, `{"n": 1, "text": "éé`))
	require.JSONEq(t, `{"ok": true}`, string(it.Result.JSON))
}

func TestCharts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("exact", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{}, 30)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		burn(t, b, map[int32]bool{3: true})
		ch, err := b.exec.Charts(ctx, run.ID)
		require.NoError(t, err)
		require.False(t, ch.Sampled)
		require.EqualValues(t, 30, ch.TotalItems)
		require.EqualValues(t, 30, ch.SampleItems)
		require.NotEmpty(t, ch.Throughput)
		var ok, bad int64
		for i, bk := range ch.Throughput {
			ok += bk.Succeeded
			bad += bk.Failed
			if i > 0 {
				require.Equal(t, ch.Interval, bk.Start.Sub(ch.Throughput[i-1].Start))
			}
		}
		require.EqualValues(t, 29, ok)
		require.EqualValues(t, 1, bad)
		var n int64
		for _, bin := range ch.Durations {
			n += bin.Count
			require.LessOrEqual(t, bin.From, bin.To)
		}
		require.EqualValues(t, 29, n, "every succeeded item lands in a bin")
	})
	t.Run("sampled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{ChartSampleAbove: 100, ChartSampleTarget: 50}, 400)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		burn(t, b, nil)
		ch, err := b.exec.Charts(ctx, run.ID)
		require.NoError(t, err)
		require.True(t, ch.Sampled)
		require.EqualValues(t, 400, ch.TotalItems)
		require.LessOrEqual(t, ch.SampleItems, int64(400))
		again, err := b.exec.Charts(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, ch.SampleItems, again.SampleItems, "the same pages every time")
	})
	t.Run("unstarted and missing runs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, execution.Options{}, 2)
		run, err := b.exec.StartRun(ctx, b.auto.ID, execution.StartOptions{})
		require.NoError(t, err)
		ch, err := b.exec.Charts(ctx, run.ID)
		require.NoError(t, err)
		require.Empty(t, ch.Durations)
		_, err = b.exec.Charts(ctx, uuid.New())
		require.ErrorIs(t, err, runledger.ErrNotFound)
	})
}
