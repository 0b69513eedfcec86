package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemstatehistory"
	"github.com/runledger/runledger/internal/dberr"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/fixture"
)

// The guards migration makes PostgreSQL keep the model's invariants itself.
// Each test below writes through raw SQL (as a worker in another language
// would) and, where it matters, through the client.

func pqCode(t *testing.T, err error) (string, string) {
	t.Helper()
	var e *pq.Error
	require.ErrorAs(t, err, &e)
	return string(e.Code), e.Constraint
}

func TestGuardTransitionFunctionMatchesGo(t *testing.T) {
	t.Parallel()
	d := openSQL(t, dbtest.NewURL(t))
	for _, from := range runledger.AllStatuses {
		for _, to := range runledger.AllStatuses {
			var ok bool
			require.NoError(t, d.QueryRow(`SELECT runledger_can_transition($1, $2)`, from, to).Scan(&ok))
			require.Equal(t, runledger.CanTransition(from, to), ok, "%s -> %s", from, to)
		}
	}
}

// TestGuardTransitionsThroughUpdates moves real rows of every status table
// through all 100 (from, to) pairs and compares with CanTransition.
func TestGuardTransitionsThroughUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	eng, err := d.Engine.Create().SetName("e").SetType("argo").Save(ctx)
	require.NoError(t, err)

	// One fresh row per (table, from) pair, inserted in status `from`:
	// an insert is not a transition.
	insert := map[string]string{
		"run":                    `INSERT INTO run (automation_id, status) VALUES ($1, $2) RETURNING id`,
		"batch_execution":        `INSERT INTO batch_execution (run_id, batch_id, status) SELECT id, $1::uuid, $2 FROM run r WHERE r.id = (SELECT id FROM run LIMIT 1) RETURNING id`,
		"orchestration_instance": `INSERT INTO orchestration_instance (engine_id, external_id, status) VALUES ($1, gen_random_uuid()::text, $2) RETURNING id`,
	}
	parent := map[string]any{"run": g.Automation.ID, "batch_execution": g.Batches[0].ID, "orchestration_instance": eng.ID}
	for _, table := range []string{"run", "orchestration_instance", "item_execution", "batch_execution"} {
		for _, from := range runledger.AllStatuses {
			for _, to := range runledger.AllStatuses {
				tx, err := d.SQL().BeginTx(ctx, nil)
				require.NoError(t, err)
				var id string
				switch table {
				case "item_execution":
					// (run_id, item_id) is unique: a new run per pair.
					var runID string
					require.NoError(t, tx.QueryRow(`INSERT INTO run (automation_id) VALUES ($1) RETURNING id`, g.Automation.ID).Scan(&runID))
					require.NoError(t, tx.QueryRow(`INSERT INTO item_execution (run_id, batch_execution_id, item_id, status) VALUES ($1, $2, $3, $4) RETURNING id`,
						runID, g.BatchExecutions[0].ID, g.Items[0][0].ID, from).Scan(&id))
				case "batch_execution":
					var runID string
					require.NoError(t, tx.QueryRow(`INSERT INTO run (automation_id) VALUES ($1) RETURNING id`, g.Automation.ID).Scan(&runID))
					require.NoError(t, tx.QueryRow(`INSERT INTO batch_execution (run_id, batch_id, status) VALUES ($1, $2, $3) RETURNING id`,
						runID, g.Batches[0].ID, from).Scan(&id))
				default:
					require.NoError(t, tx.QueryRow(insert[table], parent[table], from).Scan(&id))
				}
				_, err = tx.Exec(fmt.Sprintf(`UPDATE %s SET status = $1 WHERE id = $2`, table), to, id)
				if runledger.CanTransition(from, to) {
					require.NoError(t, err, "%s: %s -> %s", table, from, to)
				} else {
					require.Error(t, err, "%s: %s -> %s", table, from, to)
					terr := dberr.Translate(ctx, err)
					require.ErrorIs(t, terr, runledger.ErrIllegalTransition)
					var te *runledger.TransitionError
					require.ErrorAs(t, terr, &te)
					require.Equal(t, table, te.Table)
					require.Equal(t, from, te.From)
					require.Equal(t, to, te.To)
					// On the partitioned layout the row trigger fires on
					// the partition, whose name its message carries.
					require.Regexp(t, fmt.Sprintf(`%s(_p[0-9]{6})?: %s -> %s`, table, from, to), err.Error())
				}
				require.NoError(t, tx.Rollback())
			}
		}
	}
}

func TestGuardTransitionThroughClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := dbtest.New(t).Client
	g := fixture.Build(t, ctx, client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	r, err := client.Run.UpdateOne(g.Run).SetStatus(runledger.StatusSucceeded).Save(ctx)
	require.NoError(t, err)
	_, err = client.Run.UpdateOne(r).SetStatus(runledger.StatusRunning).Save(ctx)
	var te *runledger.TransitionError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "run", te.Table)
	require.Equal(t, runledger.StatusSucceeded, te.From)
	require.Equal(t, runledger.StatusRunning, te.To)
	var pqErr *pq.Error
	require.ErrorAs(t, err, &pqErr, "the typed error still unwraps to the driver error")

	// Setting the same status again is allowed.
	_, err = client.Run.UpdateOne(r).SetStatus(runledger.StatusSucceeded).Save(ctx)
	require.NoError(t, err)
	// A bulk update is guarded the same way.
	_, err = client.Run.Update().SetStatus(runledger.StatusPending).Save(ctx)
	require.ErrorIs(t, err, runledger.ErrIllegalTransition)
}

func TestGuardStatusValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	eng, err := d.Engine.Create().SetName("e").SetType("jenkins").Save(ctx)
	require.NoError(t, err)
	_, err = d.OrchestrationInstance.Create().SetEngine(eng).SetExternalID("x").Save(ctx)
	require.NoError(t, err)
	for _, stmt := range []string{
		`UPDATE run SET status = 'done'`,
		`UPDATE batch_execution SET status = 'done'`,
		`UPDATE item_execution SET status = 'done'`,
		`UPDATE orchestration_instance SET status = 'done'`,
		`INSERT INTO run (automation_id, status) SELECT id, 'bogus' FROM automation`,
		`INSERT INTO item_state_history (item_execution_id, new_status) SELECT id, 'bogus' FROM item_execution`,
		`INSERT INTO item_state_history (item_execution_id, previous_status, new_status) SELECT id, 'bogus', 'queued' FROM item_execution`,
	} {
		_, err := d.SQL().ExecContext(ctx, stmt)
		code, constraint := pqCode(t, err)
		require.Equal(t, "23514", code, stmt)
		require.Contains(t, constraint, "status_valid", stmt)
		require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrInvalid)
	}
	// Through the client, the enum validator refuses first.
	_, err = d.Run.UpdateOne(g.Run).SetStatus("done").Save(ctx)
	require.ErrorIs(t, err, runledger.ErrInvalid)
}

func TestGuardVersionAndUpdatedAt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 2})
	eng, err := d.Engine.Create().SetName("e").SetType("temporal").Save(ctx)
	require.NoError(t, err)
	inst, err := d.OrchestrationInstance.Create().SetEngine(eng).SetExternalID("wf").Save(ctx)
	require.NoError(t, err)
	_, err = d.RunOrchestration.Create().SetRun(g.Run).SetOrchestrationInstance(inst).Save(ctx)
	require.NoError(t, err)
	// Make every updated_at old, then update through raw SQL: version +1, updated_at = now().
	for _, table := range tables {
		if table == "item_state_history" {
			continue
		}
		_, err := d.SQL().ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %[1]s DISABLE TRIGGER USER; UPDATE %[1]s SET updated_at = '2000-01-01', version = 7; ALTER TABLE %[1]s ENABLE TRIGGER USER`, table))
		require.NoError(t, err, table)
		_, err = d.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET version = 1000, updated_at = '1999-01-01'`, table))
		require.NoError(t, err, table)
		var minV, maxV int
		var oldest time.Time
		require.NoError(t, d.SQL().QueryRowContext(ctx, fmt.Sprintf(`SELECT min(version), max(version), min(updated_at) FROM %s`, table)).Scan(&minV, &maxV, &oldest))
		require.Equal(t, 8, minV, "%s: the trigger sets version = old + 1, whatever the writer set", table)
		require.Equal(t, 8, maxV, table)
		require.WithinDuration(t, time.Now(), oldest, time.Minute, table)
	}
	// Upserts too.
	_, err = d.SQL().ExecContext(ctx, `INSERT INTO engine (name, type) VALUES ('e', 'argo') ON CONFLICT (name) DO UPDATE SET type = excluded.type`)
	require.NoError(t, err)
	var v int
	require.NoError(t, d.SQL().QueryRowContext(ctx, `SELECT version FROM engine WHERE name = 'e'`).Scan(&v))
	require.Equal(t, 9, v)
}

// A writer that sets version + 1 and updated_at = now() itself skips the
// guard function (its WHEN clause): the row still gets exactly one version
// more, and an illegal transition is refused all the same.
func TestGuardWhenWriterTouches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	ie := g.ItemExecutions[0]
	var before int
	require.NoError(t, d.SQL().QueryRowContext(ctx, `SELECT version FROM item_execution WHERE id = $1`, ie.ID).Scan(&before))
	for _, tc := range []struct {
		set  string
		want int // versions gained
	}{
		{`status = 'running', version = version + 1, updated_at = now()`, 1},        // skips the function
		{`status = 'running', version = version + 5, updated_at = now()`, 1},        // corrected by it
		{`status = 'running', version = version + 1, updated_at = '2000-01-01'`, 1}, // corrected by it
		{`claimed_by = 'w'`, 1}, // no touch at all: the function does it
	} {
		tx, err := d.SQL().BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `UPDATE item_execution SET `+tc.set+` WHERE id = $1`, ie.ID)
		require.NoError(t, err, tc.set)
		var v int
		var fresh bool
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT version, updated_at = now() FROM item_execution WHERE id = $1`, ie.ID).Scan(&v, &fresh))
		require.NoError(t, tx.Rollback())
		require.Equal(t, before+tc.want, v, tc.set)
		require.True(t, fresh, "%s: updated_at is the transaction's now()", tc.set)
	}
	for _, table := range []string{"item_execution", "batch_execution", "run"} {
		_, err := d.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET status = 'succeeded', version = version + 1, updated_at = now()`, table))
		require.NoError(t, err, table)
		_, err = d.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET status = 'running', version = version + 1, updated_at = now()`, table))
		require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrIllegalTransition, "%s: touched by the writer, still guarded", table)
	}
}

// The history trigger's join of its transition tables is planned once per
// session, at its first call: it must not become a nested loop when that
// call was small (migration history_join). The function carries
// enable_nestloop = off, and a session that first changes one row and then
// many records each change once.
func TestGuardHistoryJoinAfterSmallFirstCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	var config []string
	require.NoError(t, d.SQL().QueryRowContext(ctx, `SELECT coalesce(proconfig, '{}') FROM pg_proc WHERE proname = 'runledger_history_update'`).Scan(pq.Array(&config)))
	require.Contains(t, config, "enable_nestloop=off")
	require.Contains(t, config, "jit=off")

	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 40})
	conn, err := d.SQL().Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	first := g.ItemExecutions[0].ID
	_, err = conn.ExecContext(ctx, `UPDATE item_execution SET status = 'running' WHERE id = $1`, first)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `UPDATE item_execution SET status = 'running' WHERE id <> $1`, first)
	require.NoError(t, err)
	var rows, items int
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT item_execution_id) FROM item_state_history
		WHERE new_status = 'running'`).Scan(&rows, &items))
	require.Equal(t, 40, rows)
	require.Equal(t, 40, items)
}

func TestGuardHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	ie := g.ItemExecutions[0]
	history := func() []*ent.ItemStateHistory {
		hs, err := d.ItemStateHistory.Query().
			Where(itemstatehistory.ItemExecutionID(ie.ID)).
			Order(ent.Asc(itemstatehistory.FieldChangedAt)).All(ctx)
		require.NoError(t, err)
		return hs
	}
	hs := history()
	require.Len(t, hs, 1, "the insert wrote one history row")
	require.Nil(t, hs[0].PreviousStatus)
	require.Equal(t, runledger.StatusQueued, hs[0].NewStatus)

	bob := runledger.WithActor(ctx, "bob")
	ie, err := d.ItemExecution.UpdateOne(ie).SetStatus(runledger.StatusRunning).Save(bob)
	require.NoError(t, err)
	ie, err = d.ItemExecution.UpdateOne(ie).SetStatus(runledger.StatusRunning).SetAttemptCount(1).Save(bob)
	require.NoError(t, err)
	hs = history()
	require.Len(t, hs, 2, "the same status again records nothing")
	require.Equal(t, runledger.StatusQueued, *hs[1].PreviousStatus)
	require.Equal(t, runledger.StatusRunning, hs[1].NewStatus)
	require.Equal(t, "bob", *hs[1].CreatedBy, "created_by is the row's updated_by")

	// Raw SQL records the same way, and a rolled-back transaction leaves nothing.
	tx, err := d.SQL().BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.Exec(`UPDATE item_execution SET status = 'succeeded', updated_by = 'worker-9' WHERE id = $1`, ie.ID)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	require.Len(t, history(), 2)
	_, err = d.SQL().ExecContext(ctx, `UPDATE item_execution SET status = 'succeeded', updated_by = 'worker-9' WHERE id = $1`, ie.ID)
	require.NoError(t, err)
	hs = history()
	require.Len(t, hs, 3)
	require.Equal(t, "worker-9", *hs[2].CreatedBy)

	// Immutable: no update, no direct delete, no truncate; the cascade works.
	for _, stmt := range []string{
		`UPDATE item_state_history SET created_by = 'mallory'`,
		`DELETE FROM item_state_history`,
		`TRUNCATE item_state_history`,
	} {
		_, err := d.SQL().ExecContext(ctx, stmt)
		require.ErrorIs(t, dberr.Translate(ctx, err), runledger.ErrImmutable, stmt)
	}
	require.Len(t, history(), 3)
	_, err = d.SQL().ExecContext(ctx, `DELETE FROM item_execution WHERE id = $1`, ie.ID)
	require.NoError(t, err)
	require.Empty(t, history(), "the cascade from the item execution removes its history")
}

func TestGuardBulkHistoryOneStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	const n = 10000
	_, err := d.SQL().ExecContext(ctx, `
		WITH items AS (
			INSERT INTO item (batch_id, sequence_number) SELECT $1, s FROM generate_series(1, $3::int) s RETURNING id)
		INSERT INTO item_execution (run_id, batch_execution_id, item_id, status)
		SELECT $2, $4, id, 'queued' FROM items`, g.Batches[0].ID, g.Run.ID, n, g.BatchExecutions[0].ID)
	require.NoError(t, err)
	res, err := d.SQL().ExecContext(ctx, `UPDATE item_execution SET status = 'running', updated_by = 'bulk' WHERE run_id = $1 AND status = 'queued'`, g.Run.ID)
	require.NoError(t, err)
	changed, err := res.RowsAffected()
	require.NoError(t, err)
	require.EqualValues(t, n+1, changed)
	var inserts, updates int
	require.NoError(t, d.SQL().QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE previous_status IS NULL), count(*) FILTER (WHERE previous_status = 'queued' AND new_status = 'running' AND created_by = 'bulk') FROM item_state_history`).Scan(&inserts, &updates))
	require.Equal(t, n+1, inserts)
	require.Equal(t, n+1, updates)
}

func TestGuardChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	g := fixture.Build(t, ctx, d.Client, fixture.Options{Batches: 1, ItemsPerBatch: 1})
	eng, err := d.Engine.Create().SetName("e").SetType("jenkins").Save(ctx)
	require.NoError(t, err)
	_, err = d.OrchestrationInstance.Create().SetEngine(eng).SetExternalID("x").Save(ctx)
	require.NoError(t, err)
	tests := []struct{ stmt, constraint string }{
		{`UPDATE item_execution SET attempt_count = -1`, "ck_attempt_count_nonnegative"},
		{`UPDATE item_execution SET max_attempts = 0`, "ck_max_attempts_positive"},
		{`UPDATE item SET sequence_number = -1`, "ck_sequence_number_nonnegative"},
		{`UPDATE orchestration_instance SET duration_seconds = -5`, "ck_duration_seconds_nonnegative"},
		{`UPDATE run SET started_at = now(), finished_at = now() - interval '1 hour'`, "ck_finished_after_started"},
	}
	for _, tt := range tests {
		_, err := d.SQL().ExecContext(ctx, tt.stmt)
		code, constraint := pqCode(t, err)
		require.Equal(t, "23514", code, tt.stmt)
		require.Equal(t, tt.constraint, constraint)
		var ie *runledger.InvalidError
		require.ErrorAs(t, dberr.Translate(ctx, err), &ie)
		require.Equal(t, tt.constraint, ie.Field)
	}
	// Through the client, the same bounds hold (ent validators or the database).
	_, err = d.ItemExecution.UpdateOne(g.ItemExecutions[0]).SetMaxAttempts(0).Save(ctx)
	require.ErrorIs(t, err, runledger.ErrInvalid)
	_, err = d.Run.UpdateOne(g.Run).SetStartedAt(time.Now()).SetFinishedAt(time.Now().Add(-time.Hour)).Save(ctx)
	var ie *runledger.InvalidError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "ck_finished_after_started", ie.Field)
}

// TestGuardVersionRace: 32 goroutines each read the row and update it with
// the version they read. Every loser gets ErrStale, no winner's change is
// lost, and the final version is 1 + the number of winners.
func TestGuardVersionRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	a, err := d.Automation.Create().SetName("race").SetDescription("").Save(ctx)
	require.NoError(t, err)
	const workers = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		losers  int
	)
	start := make(chan struct{})
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			read, err := d.Automation.Get(ctx, a.ID)
			if err != nil {
				t.Error(err)
				return
			}
			tag := fmt.Sprintf("w%02d", i)
			_, err = d.Automation.UpdateOne(read).SetDescription(*read.Description + tag + ",").Save(ctx)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, tag)
			case errorsIsStale(err):
				losers++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, workers, len(winners)+losers)
	got, err := d.Automation.Get(ctx, a.ID)
	require.NoError(t, err)
	require.EqualValues(t, 1+len(winners), got.Version)
	recorded := strings.Split(strings.TrimSuffix(*got.Description, ","), ",")
	require.ElementsMatch(t, winners, recorded, "every winner's change is in the row: none was lost")
}

func errorsIsStale(err error) bool {
	var s *runledger.StaleError
	return err != nil && asErr(err, &s)
}

func TestOpenNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, url := range []string{
		"postgres://bob:hunter2secret@[::1:5432/db",                                       // malformed
		"postgres://bob:hunter2secret@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2", // refused
		"host=127.0.0.1 port=1 user=bob password=hunter2secret dbname=nodb sslmode=disable connect_timeout=2",
		"postgres://bob:hunter2secret@127.0.0.1:5432/no_such_db_here?sslmode=disable",
	} {
		_, err := db.Open(ctx, db.Config{URL: url})
		require.Error(t, err, url)
		require.NotContains(t, err.Error(), "hunter2secret")
		require.NotContains(t, err.Error(), "bob:")
	}
	_, err := db.Open(ctx, db.Config{})
	require.ErrorIs(t, err, runledger.ErrInvalid)
}
