package execution_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/run"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
)

func TestMapState(t *testing.T) {
	t.Parallel()
	const (
		pending   = runledger.StatusPending
		queued    = runledger.StatusQueued
		running   = runledger.StatusRunning
		succeeded = runledger.StatusSucceeded
		failed    = runledger.StatusFailed
		cancelled = runledger.StatusCancelled
		timedOut  = runledger.StatusTimedOut
		skipped   = runledger.StatusSkipped
	)
	tests := []struct {
		engine, word  string
		unstableFails bool
		want          runledger.ExecutionStatus
		ok            bool
	}{
		// Argo Workflows, workflow phase.
		{"argo", "Pending", false, queued, true},
		{"argo", "Running", false, running, true},
		{"argo", "Succeeded", false, succeeded, true},
		{"argo", "Failed", false, failed, true},
		{"argo", "Error", false, failed, true},
		// Argo Workflows, node phase.
		{"argo", "Skipped", false, skipped, true},
		{"argo", "Omitted", false, skipped, true},
		// Jenkins.
		{"jenkins", "in queue", false, queued, true},
		{"jenkins", "building", false, running, true},
		// Jenkins build results.
		{"jenkins", "SUCCESS", false, succeeded, true},
		{"jenkins", "UNSTABLE", false, succeeded, true},
		{"jenkins", "UNSTABLE", true, failed, true},
		{"jenkins", "FAILURE", false, failed, true},
		{"jenkins", "ABORTED", false, cancelled, true},
		{"jenkins", "NOT_BUILT", false, skipped, true},
		// Temporal.
		{"temporal", "Running", false, running, true},
		{"temporal", "Completed", false, succeeded, true},
		{"temporal", "Failed", false, failed, true},
		{"temporal", "Canceled", false, cancelled, true},
		{"temporal", "Terminated", false, cancelled, true},
		{"temporal", "TimedOut", false, timedOut, true},
		{"temporal", "ContinuedAsNew", false, running, true},
		// Case-insensitive on engine type and word.
		{"ARGO", "succeeded", false, succeeded, true},
		{"Jenkins", "In Queue", false, queued, true},
		{"jenkins", "unstable", true, failed, true},
		{"TEMPORAL", "continuedasnew", false, running, true},
		// unstableFails only concerns Jenkins' UNSTABLE.
		{"jenkins", "SUCCESS", true, succeeded, true},
		{"argo", "Failed", true, failed, true},
		// Unknown words and engines.
		{"argo", "Exploded", false, "", false},
		{"argo", "Completed", false, "", false},        // a Temporal word
		{"jenkins", "Succeeded", false, "", false},     // an Argo word
		{"temporal", "Pending", false, "", false},      // an Argo word
		{"temporal", "Cancelled", false, "", false},    // Temporal spells it Canceled
		{"jenkins", "inqueue", false, "", false},       // the space matters
		{"airflow", "running", false, "", false},       // unknown engine
		{"", "Running", false, "", false},              // no engine
		{"argo", "", false, "", false},                 // no word
		{"argo", string(pending), false, queued, true}, // Argo's Pending is queued, not pending
	}
	for _, tt := range tests {
		t.Run(tt.engine+"/"+tt.word, func(t *testing.T) {
			t.Parallel()
			got, ok := execution.MapState(tt.engine, tt.word, tt.unstableFails)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRegisterEngine(t *testing.T) {
	t.Parallel()
	ctx := runledger.WithActor(context.Background(), "ops")
	d := dbtest.New(t)
	c := execution.New(d, execution.Options{})

	e, err := c.RegisterEngine(ctx, "jenkins-prod", "jenkins")
	require.NoError(t, err)
	require.Equal(t, "jenkins-prod", e.Name)
	require.Equal(t, "jenkins", e.Type)
	require.NotNil(t, e.CreatedBy)
	require.Equal(t, "ops", *e.CreatedBy)

	tests := []struct {
		name, engine, typ string
		wantSame          bool
		wantInvalid       bool
	}{
		{name: "same name and type is the same engine", engine: "jenkins-prod", typ: "jenkins", wantSame: true},
		{name: "type compared case-insensitively", engine: "jenkins-prod", typ: "Jenkins", wantSame: true},
		{name: "other type for the name is invalid", engine: "jenkins-prod", typ: "argo", wantInvalid: true},
		{name: "empty name is invalid", engine: "", typ: "argo", wantInvalid: true},
		{name: "empty type is invalid", engine: "x", typ: "", wantInvalid: true},
		{name: "name over 100 characters is invalid", engine: string(make([]byte, 101)), typ: "argo", wantInvalid: true},
		{name: "type over 50 characters is invalid", engine: "x", typ: string(make([]byte, 51)), wantInvalid: true},
		{name: "other name is another engine", engine: "argo-" + uuid.NewString()[:8], typ: "argo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.RegisterEngine(ctx, tt.engine, tt.typ)
			if tt.wantInvalid {
				var inv *runledger.InvalidError
				require.ErrorAs(t, err, &inv)
				require.ErrorIs(t, err, runledger.ErrInvalid)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			if tt.wantSame {
				require.Equal(t, e.ID, got.ID)
				require.Equal(t, "jenkins", got.Type)
			} else {
				require.NotEqual(t, e.ID, got.ID)
			}
		})
	}

	t.Run("concurrent registrations agree", func(t *testing.T) {
		t.Parallel()
		name := "temporal-" + uuid.NewString()[:8]
		ids := make(chan uuid.UUID, 8)
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				e, err := c.RegisterEngine(ctx, name, "temporal")
				if err != nil {
					errs <- err
					return
				}
				ids <- e.ID
			}()
		}
		var first uuid.UUID
		for range 8 {
			select {
			case err := <-errs:
				require.NoError(t, err)
			case id := <-ids:
				if first == uuid.Nil {
					first = id
				}
				require.Equal(t, first, id)
			}
		}
	})
}

func TestRegisterEngineReactivates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	c := execution.New(d, execution.Options{})
	e, err := c.RegisterEngine(ctx, "argo-old", "argo")
	require.NoError(t, err)
	require.NoError(t, d.Engine.DeleteOneID(e.ID).Exec(ctx)) // soft delete
	again, err := c.RegisterEngine(ctx, "argo-old", "argo")
	require.NoError(t, err)
	require.Equal(t, e.ID, again.ID)
	require.True(t, again.IsActive)
}

func TestAttachInstance(t *testing.T) {
	t.Parallel()
	ctx := runledger.WithActor(context.Background(), "scheduler")
	d := dbtest.New(t)
	c := execution.New(d, execution.Options{})
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	eng, err := c.RegisterEngine(ctx, "argo-main", "argo")
	require.NoError(t, err)

	first, err := c.AttachInstance(ctx, g.Run.ID, eng.ID, "wf-123", map[string]any{"namespace": "ci", "pod": "a"})
	require.NoError(t, err)
	require.Equal(t, runledger.StatusPending, first.Status)
	require.Equal(t, "wf-123", first.ExternalID)
	require.Equal(t, eng.ID, first.EngineID)
	require.Equal(t, map[string]any{"namespace": "ci", "pod": "a"}, first.InstanceMetadata)

	second, err := c.AttachInstance(ctx, g.Run.ID, eng.ID, "wf-123", map[string]any{"pod": "b", "node": "n1"})
	require.NoError(t, err)
	require.Equal(t, first.ID, second.ID)
	require.Equal(t, map[string]any{"namespace": "ci", "pod": "b", "node": "n1"}, second.InstanceMetadata, "metadata merged")

	third, err := c.AttachInstance(ctx, g.Run.ID, eng.ID, "wf-123", nil)
	require.NoError(t, err)
	require.Equal(t, first.ID, third.ID)
	require.Equal(t, second.Version, third.Version, "nothing to change: no update")
	require.Equal(t, second.InstanceMetadata, third.InstanceMetadata)

	n, err := d.OrchestrationInstance.Query().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "one instance")
	n, err = d.RunOrchestration.Query().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "one link")
	link, err := d.RunOrchestration.Query().Only(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), link.AttachedAt, time.Minute)

	// run -> orchestrations -> instance -> engine
	got, err := d.Run.Query().Where(run.ID(g.Run.ID)).
		QueryOrchestrations().QueryOrchestrationInstance().QueryEngine().Only(ctx)
	require.NoError(t, err)
	require.Equal(t, eng.ID, got.ID)
	inst, err := d.Run.Query().Where(run.ID(g.Run.ID)).
		QueryOrchestrations().QueryOrchestrationInstance().Only(ctx)
	require.NoError(t, err)
	require.Equal(t, first.ID, inst.ID)

	// The same instance on another run: one instance, two links.
	other, err := d.Run.Create().SetAutomation(g.Automation).SetStatus(runledger.StatusQueued).Save(ctx)
	require.NoError(t, err)
	fourth, err := c.AttachInstance(ctx, other.ID, eng.ID, "wf-123", nil)
	require.NoError(t, err)
	require.Equal(t, first.ID, fourth.ID)
	runs, err := d.OrchestrationInstance.QueryRuns(fourth).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, runs)

	tests := []struct {
		name       string
		runID      uuid.UUID
		engineID   uuid.UUID
		externalID string
		metadata   map[string]any
		want       error
	}{
		{"unknown run", uuid.New(), eng.ID, "wf-1", nil, runledger.ErrNotFound},
		{"unknown engine", g.Run.ID, uuid.New(), "wf-1", nil, runledger.ErrNotFound},
		{"empty external id", g.Run.ID, eng.ID, "", nil, runledger.ErrInvalid},
		{"external id over 200 characters", g.Run.ID, eng.ID, string(make([]byte, 201)), nil, runledger.ErrInvalid},
		{"metadata not JSON", g.Run.ID, eng.ID, "wf-1", map[string]any{"f": func() {}}, runledger.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inst, err := c.AttachInstance(ctx, tt.runID, tt.engineID, tt.externalID, tt.metadata)
			require.ErrorIs(t, err, tt.want)
			require.Nil(t, inst)
		})
	}
}

// syncStep is one SyncInstance call and what it must do.
type syncStep struct {
	word       string
	after      time.Duration // at = base + after
	want       runledger.ExecutionStatus
	invalid    bool // an unknown word: ErrInvalid, recorded anyway
	transition bool // refused by the database: nothing recorded
}

func TestSyncInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		engine string
		opts   execution.Options
		steps  []syncStep
		check  func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID)
	}{
		{
			name:   "jenkins build lifecycle",
			engine: "jenkins",
			steps: []syncStep{
				{word: "in queue", want: runledger.StatusQueued},
				{word: "building", after: 10 * time.Second, want: runledger.StatusRunning},
				{word: "building", after: 20 * time.Second, want: runledger.StatusRunning},
				{word: "SUCCESS", after: 100 * time.Second, want: runledger.StatusSucceeded},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.NotNil(t, inst.StartedAt)
				require.True(t, base.Add(10*time.Second).Equal(*inst.StartedAt), "started_at is the first building")
				require.NotNil(t, inst.FinishedAt)
				require.True(t, base.Add(100*time.Second).Equal(*inst.FinishedAt))
				require.NotNil(t, inst.DurationSeconds)
				require.EqualValues(t, 90, *inst.DurationSeconds)
				require.Equal(t, "SUCCESS", inst.InstanceMetadata["state"])
				require.Equal(t, base.Add(100*time.Second).UTC().Format(time.RFC3339), inst.InstanceMetadata["state_at"])
				require.Equal(t, "ci", inst.InstanceMetadata["namespace"], "other keys kept")
				require.NotNil(t, inst.UpdatedBy)
				require.Equal(t, "syncer", *inst.UpdatedBy)
			},
		},
		{
			name:   "jenkins UNSTABLE succeeds by default",
			engine: "jenkins",
			steps: []syncStep{
				{word: "building", want: runledger.StatusRunning},
				{word: "UNSTABLE", after: 5 * time.Second, want: runledger.StatusSucceeded},
			},
		},
		{
			name:   "jenkins UNSTABLE fails when configured",
			engine: "jenkins",
			opts:   execution.Options{JenkinsUnstableFails: true},
			steps: []syncStep{
				{word: "building", want: runledger.StatusRunning},
				{word: "UNSTABLE", after: 5 * time.Second, want: runledger.StatusFailed},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.NotNil(t, inst.DurationSeconds)
				require.EqualValues(t, 5, *inst.DurationSeconds)
			},
		},
		{
			name:   "jenkins result without start has no duration",
			engine: "jenkins",
			steps:  []syncStep{{word: "NOT_BUILT", want: runledger.StatusSkipped}},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.Nil(t, inst.StartedAt)
				require.NotNil(t, inst.FinishedAt)
				require.Nil(t, inst.DurationSeconds)
			},
		},
		{
			name:   "temporal ContinuedAsNew keeps running",
			engine: "temporal",
			steps: []syncStep{
				{word: "Running", want: runledger.StatusRunning},
				{word: "ContinuedAsNew", after: time.Minute, want: runledger.StatusRunning},
				{word: "TimedOut", after: 2 * time.Minute, want: runledger.StatusTimedOut},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.True(t, base.Equal(*inst.StartedAt), "started_at kept across ContinuedAsNew")
				require.EqualValues(t, 120, *inst.DurationSeconds)
			},
		},
		{
			name:   "argo unknown word is recorded and refused",
			engine: "argo",
			steps: []syncStep{
				{word: "Running", want: runledger.StatusRunning},
				{word: "Exploded", after: time.Second, want: runledger.StatusRunning, invalid: true},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.Equal(t, "Exploded", inst.InstanceMetadata["state"])
				require.Equal(t, base.Add(time.Second).UTC().Format(time.RFC3339), inst.InstanceMetadata["state_at"])
			},
		},
		{
			name:   "unknown engine type records every word",
			engine: "airflow",
			steps:  []syncStep{{word: "running", want: runledger.StatusPending, invalid: true}},
		},
		{
			name:   "succeeded to running is refused by the database",
			engine: "argo",
			steps: []syncStep{
				{word: "Running", want: runledger.StatusRunning},
				{word: "Succeeded", after: 3 * time.Second, want: runledger.StatusSucceeded},
				{word: "Running", after: 4 * time.Second, want: runledger.StatusSucceeded, transition: true},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.Equal(t, "Succeeded", inst.InstanceMetadata["state"], "the refused word is not recorded")
				require.EqualValues(t, 3, *inst.DurationSeconds)
			},
		},
		{
			name:   "manual retry clears finished_at",
			engine: "argo",
			steps: []syncStep{
				{word: "Running", want: runledger.StatusRunning},
				{word: "Failed", after: 3 * time.Second, want: runledger.StatusFailed},
				{word: "Pending", after: 4 * time.Second, want: runledger.StatusQueued},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.Nil(t, inst.FinishedAt)
				require.Nil(t, inst.DurationSeconds)
			},
		},
		{
			name:   "finish reported before start is clamped",
			engine: "temporal",
			steps: []syncStep{
				{word: "Running", after: 10 * time.Second, want: runledger.StatusRunning},
				{word: "Completed", after: 5 * time.Second, want: runledger.StatusSucceeded},
			},
			check: func(t *testing.T, base time.Time, d *db.DB, id uuid.UUID) {
				inst := get(t, d, id)
				require.True(t, inst.FinishedAt.Equal(*inst.StartedAt))
				require.EqualValues(t, 0, *inst.DurationSeconds)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := runledger.WithActor(context.Background(), "syncer")
			d := dbtest.New(t)
			c := execution.New(d, tt.opts)
			g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
			eng, err := c.RegisterEngine(ctx, "engine-"+tt.engine, tt.engine)
			require.NoError(t, err)
			inst, err := c.AttachInstance(ctx, g.Run.ID, eng.ID, "ext-1", map[string]any{"namespace": "ci"})
			require.NoError(t, err)
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			for i, st := range tt.steps {
				before := get(t, d, inst.ID)
				got, err := c.SyncInstance(ctx, inst.ID, st.word, base.Add(st.after))
				switch {
				case st.invalid:
					require.ErrorIs(t, err, runledger.ErrInvalid, "step %d", i)
					var inv *runledger.InvalidError
					require.ErrorAs(t, err, &inv)
					require.Contains(t, inv.Error(), st.word)
					require.NotNil(t, got, "the recorded instance comes back with the error")
					require.Equal(t, st.word, got.InstanceMetadata["state"])
				case st.transition:
					var te *runledger.TransitionError
					require.ErrorAs(t, err, &te, "step %d", i)
					require.ErrorIs(t, err, runledger.ErrIllegalTransition)
					require.Equal(t, "orchestration_instance", te.Table)
					require.Equal(t, before.Status, te.From)
					to, _ := execution.MapState(tt.engine, st.word, tt.opts.JenkinsUnstableFails)
					require.Equal(t, to, te.To)
					require.Nil(t, got)
				default:
					require.NoError(t, err, "step %d", i)
					require.Equal(t, st.word, got.InstanceMetadata["state"])
				}
				after := get(t, d, inst.ID)
				require.Equal(t, st.want, after.Status, "step %d: %s", i, st.word)
				if st.transition {
					require.Equal(t, before.Version, after.Version, "rolled back")
				} else {
					require.Equal(t, before.Version+1, after.Version)
				}
			}
			if tt.check != nil {
				tt.check(t, base, d, inst.ID)
			}
		})
	}

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		d := dbtest.New(t)
		c := execution.New(d, execution.Options{})
		_, err := c.SyncInstance(ctx, uuid.New(), "Running", time.Now())
		require.ErrorIs(t, err, runledger.ErrNotFound)
		_, err = c.SyncInstance(ctx, uuid.New(), "  ", time.Now())
		require.ErrorIs(t, err, runledger.ErrInvalid)
	})
}

// get reads an orchestration instance back.
func get(t *testing.T, d *db.DB, id uuid.UUID) *ent.OrchestrationInstance {
	t.Helper()
	inst, err := d.OrchestrationInstance.Get(context.Background(), id)
	require.NoError(t, err)
	return inst
}
