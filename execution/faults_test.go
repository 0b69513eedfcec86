package execution_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/migrate"
)

// The fault suite: several workers burn down a run with random failures
// while a fault is injected, on a private server (internal/pgserver) that
// may be restarted or crashed. After each, the ledger's invariants are
// checked with plain SQL, and every answer a worker was given is checked
// against what committed.
//
// Workers behave as documented in package execution: on ErrTransient they
// retry the same call, on ErrLeaseLost they drop the items, and anything
// else fails the test.

const (
	faultBatches     = 3
	faultItemsPer    = 100
	faultWorkers     = 4
	faultClaim       = 20
	faultLease       = 2 * time.Second
	faultMaxAttempts = 6
	faultDeadline    = 45 * time.Second
)

// scenario is one fault, injected while the burn-down runs. inject returns
// when the fault is over; it may use the server and the scenario's admin
// connection.
type scenario struct {
	name string
	// setup runs before the workers start (install a trigger, a proxy).
	setup func(t *testing.T, f *faultRun)
	// inject runs concurrently with the workers, from the start.
	inject func(t *testing.T, f *faultRun)
	// zombie adds a worker that claims, stops reporting, and reports
	// after Rescue took its items back: it must be told lease lost.
	zombie bool
}

// faultRun is one scenario's world.
type faultRun struct {
	server    *pgserver.Server
	dbName    string
	workerURL string            // what workers connect to (the server, or a proxy)
	admin     *sql.DB           // on the server's postgres database
	plain     *sql.DB           // on the scenario's database, for DDL, polling and checks
	exec      *execution.Client // the checker's client (direct to the server)
	auto      uuid.UUID
	run       uuid.UUID
	proxy     *lossyProxy

	mu        sync.Mutex
	told      map[uuid.UUID]string // item -> the worker told it succeeded
	doubles   []string             // an item told succeeded to two workers
	transient atomic.Int64         // transient errors met (and retried) by workers
	lost      atomic.Int64         // items workers were told they lost
	replayed  atomic.Int64         // items answered as replayed
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server := pgserver.ForTest(t, pgserver.Options{Settings: map[string]string{
		"fsync":                "off", // crash recovery still runs; only an OS crash would lose data
		"max_connections":      "200",
		"log_min_messages":     "fatal",
		"deadlock_timeout":     "50ms",
		"idle_session_timeout": "0",
	}})
	admin, err := sql.Open("postgres", server.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	template := "faults_template"
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+template)
	require.NoError(t, err)
	tdb, err := sql.Open("postgres", server.URL(template))
	require.NoError(t, err)
	dir, err := migrate.Embedded()
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, tdb, dir, migrate.ApplyOptions{})
	require.NoError(t, err)
	require.NoError(t, tdb.Close())

	t.Run("outcome unknown, then replayed", func(t *testing.T) {
		f := newFaultRun(t, server, admin, template, "faults_unknown")
		ctx := context.Background()
		got, err := f.exec.Claim(ctx, "w", 3, time.Minute)
		require.NoError(t, err)
		results := make([]execution.Result, len(got))
		ids := make([]uuid.UUID, len(got))
		for i, c := range got {
			results[i] = execution.Result{ID: c.ID, Attempt: c.Attempt}
			ids[i] = c.ID
		}
		px := startLossyProxy(t, fmt.Sprintf("127.0.0.1:%d", server.Port()), 0)
		x := execution.New(openFaultDB(t, fmt.Sprintf("postgres://root@%s/%s?sslmode=disable", px.addr(), f.dbName)), execution.Options{})
		defer func() { _ = x.Close() }()

		// Prepare the report statement on the connection first.
		_, err = x.Complete(ctx, "w", []execution.Result{{ID: uuid.New()}})
		require.ErrorIs(t, err, runledger.ErrLeaseLost)
		px.all.Store(true) // the answer to the report is lost, and the connection with it
		rep, err := x.Complete(ctx, "w", results)
		require.ErrorIs(t, err, runledger.ErrUnavailable)
		require.ErrorIs(t, err, runledger.ErrTransient)
		require.ErrorContains(t, err, "outcome unknown")
		require.Equal(t, execution.Report{}, rep)
		var done int
		require.NoError(t, f.plain.QueryRow(`SELECT count(*) FROM item_execution WHERE status = 'succeeded' AND updated_by = 'w'`).Scan(&done))
		require.Equal(t, len(got), done, "the report did commit")

		px.all.Store(false) // the same call again: applied once, answered as applied
		rep, err = x.Complete(ctx, "w", results)
		require.NoError(t, err)
		require.Empty(t, rep.Succeeded)
		require.ElementsMatch(t, ids, rep.Replayed)
	})

	//nolint:paralleltest // sequential: restarts and crashes hit the whole server
	for i, sc := range faultScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			f := newFaultRun(t, server, admin, template, fmt.Sprintf("faults_%d", i))
			if sc.setup != nil {
				sc.setup(t, f)
			}
			f.burnDown(t, sc)
			f.check(t)
			t.Logf("%s: %d transient errors retried, %d items lease lost, %d replayed, %d successes told",
				sc.name, f.transient.Load(), f.lost.Load(), f.replayed.Load(), len(f.told))
		})
	}
}

func faultScenarios() []scenario {
	return []scenario{
		{name: "fast restart", inject: func(t *testing.T, f *faultRun) {
			time.Sleep(300 * time.Millisecond)
			if err := f.server.Restart(context.Background(), pgserver.Fast); err != nil {
				t.Errorf("restart: %v", err)
			}
		}},
		{name: "immediate stop and crash recovery", inject: func(t *testing.T, f *faultRun) {
			time.Sleep(300 * time.Millisecond)
			if err := f.server.Stop(context.Background(), pgserver.Immediate); err != nil {
				t.Errorf("stop: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			if err := f.server.Start(context.Background()); err != nil {
				t.Errorf("start: %v", err)
			}
		}},
		{name: "backends terminated", inject: func(t *testing.T, f *faultRun) {
			for range 10 {
				time.Sleep(120 * time.Millisecond)
				_, _ = f.admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, f.dbName)
			}
		}},
		{name: "worker stops reporting", zombie: true},
		{name: "statement timeout window", inject: func(t *testing.T, f *faultRun) {
			time.Sleep(200 * time.Millisecond)
			f.setSystem(t, "statement_timeout", "3ms")
			time.Sleep(time.Second)
			f.setSystem(t, "statement_timeout", "")
		}},
		{name: "row lock holder and lock timeout", inject: func(t *testing.T, f *faultRun) {
			f.setSystem(t, "lock_timeout", "30ms")
			defer f.setSystem(t, "lock_timeout", "")
			ctx := context.Background()
			for i := range 12 {
				time.Sleep(50 * time.Millisecond)
				tx, err := f.admin.BeginTx(ctx, nil)
				if err != nil {
					continue
				}
				// Rows the workers hold, and now and then the run's batch
				// executions (roll-up and claim lock them).
				_, _ = tx.ExecContext(ctx, `SELECT id FROM item_execution WHERE status = 'running' ORDER BY random() LIMIT 20 FOR UPDATE SKIP LOCKED`)
				if i%3 == 0 {
					_, _ = tx.ExecContext(ctx, `SELECT id FROM batch_execution ORDER BY id FOR UPDATE`)
				}
				time.Sleep(150 * time.Millisecond)
				_ = tx.Rollback()
			}
		}, setup: func(t *testing.T, f *faultRun) {
			f.admin = f.plain // the holder works on the scenario's database
		}},
		{name: "commits failing with 40001", setup: func(t *testing.T, f *faultRun) {
			_, err := f.plain.Exec(`
				CREATE FUNCTION fault_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF hashtext(txid_current()::text) % 4 = 0 THEN
						RAISE EXCEPTION 'injected commit failure' USING ERRCODE = '40001';
					END IF;
					RETURN NULL;
				END $$;
				CREATE CONSTRAINT TRIGGER fault_fail_commit AFTER UPDATE ON item_execution
					DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_fail_commit();`)
			require.NoError(t, err)
		}, inject: func(t *testing.T, f *faultRun) {
			time.Sleep(2 * time.Second)
			if _, err := f.plain.Exec(`DROP TRIGGER fault_fail_commit ON item_execution`); err != nil {
				t.Errorf("drop trigger: %v", err)
			}
		}},
		{name: "answers lost after commit", setup: func(t *testing.T, f *faultRun) {
			f.proxy = startLossyProxy(t, fmt.Sprintf("127.0.0.1:%d", f.server.Port()), 0.15)
			f.workerURL = fmt.Sprintf("postgres://root@%s/%s?sslmode=disable", f.proxy.addr(), f.dbName)
		}, inject: func(t *testing.T, f *faultRun) {
			time.Sleep(2 * time.Second)
			f.proxy.drop.Store(0) // let the rest through
		}},
	}
}

func newFaultRun(t *testing.T, server *pgserver.Server, admin *sql.DB, template, name string) *faultRun {
	t.Helper()
	ctx := context.Background()
	_, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template)
	require.NoError(t, err)
	f := &faultRun{server: server, dbName: name, admin: admin, workerURL: server.URL(name), told: map[uuid.UUID]string{}}
	f.plain, err = sql.Open("postgres", server.URL(name))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.plain.Close() })
	d := openFaultDB(t, server.URL(name))
	f.exec = execution.New(d, execution.Options{RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	t.Cleanup(func() { _ = f.exec.Close() })

	a, err := d.Automation.Create().SetName("faults").Save(ctx)
	require.NoError(t, err)
	f.auto = a.ID
	for b := range faultBatches {
		bt, err := d.Batch.Create().SetAutomation(a).SetName(fmt.Sprintf("batch-%d", b)).Save(ctx)
		require.NoError(t, err)
		items := make([]execution.NewItem, faultItemsPer)
		for i := range items {
			items[i] = execution.NewItem{SequenceNumber: int32(i), Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		}
		_, err = f.exec.AddItems(ctx, bt.ID, execution.Items(items))
		require.NoError(t, err)
	}
	run, err := f.exec.StartRun(ctx, a.ID, execution.StartOptions{MaxAttempts: faultMaxAttempts})
	require.NoError(t, err)
	f.run = run.ID
	return f
}

// openWorkerDB opens a worker's pool, waiting for a server that may be down
// right now.
func openWorkerDB(ctx context.Context, url string) (*db.DB, error) {
	d, err := db.Open(ctx, db.Config{URL: url, PoolSize: 2, MaxOverflow: 2, ValidateAfter: -1})
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		d, err = db.Open(ctx, db.Config{URL: url, PoolSize: 2, MaxOverflow: 2, ValidateAfter: -1})
	}
	return d, err
}

func openFaultDB(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{URL: url, PoolSize: 2, MaxOverflow: 2, ValidateAfter: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// setSystem sets (or, with "", resets) a server setting for every session,
// through the configuration file: existing sessions pick it up on reload.
// It runs beside the test goroutine, so it reports with t.Errorf.
func (f *faultRun) setSystem(t *testing.T, name, value string) {
	admin, err := sql.Open("postgres", f.server.URL("postgres"))
	if err != nil {
		t.Errorf("setSystem: %v", err)
		return
	}
	defer admin.Close()
	q := fmt.Sprintf("ALTER SYSTEM SET %s = '%s'", name, value)
	if value == "" {
		q = "ALTER SYSTEM RESET " + name
	}
	for i := 0; ; i++ {
		_, err = admin.Exec(q)
		if err == nil {
			_, err = admin.Exec("SELECT pg_reload_conf()")
		}
		if err == nil {
			return
		}
		if i == 50 {
			t.Errorf("setSystem %s: %v", name, err)
			return
		}
		time.Sleep(20 * time.Millisecond) // the window's own timeout may hit us
	}
}

// burnDown runs the workers (and a rescuer) until the run is finished,
// injecting the scenario's fault meanwhile.
func (f *faultRun) burnDown(t *testing.T, sc scenario) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultDeadline)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, faultWorkers+3)

	for w := range faultWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.worker(ctx, fmt.Sprintf("worker-%d", w), uint64(w), done); err != nil {
				errs <- err
			}
		}()
	}
	if sc.zombie {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.zombie(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() { // the rescuer: expired leases and lost roll-ups
		defer wg.Done()
		d, err := openWorkerDB(ctx, f.workerURL)
		if err != nil {
			errs <- err
			return
		}
		defer func() { _ = d.Close() }()
		rescuer := execution.New(d, execution.Options{RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
		defer func() { _ = rescuer.Close() }()
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := rescuer.Rescue(ctx); err != nil && !errors.Is(err, runledger.ErrTransient) {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("rescue: %w", err)
				}
				return
			}
		}
	}()
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		if sc.inject != nil {
			sc.inject(t, f)
		}
	}()

	// Wait for the run to finish (the workers cannot tell a crash from the
	// end of the work).
	for {
		var status string
		err := f.plain.QueryRowContext(ctx, `SELECT status FROM run WHERE id = $1`, f.run).Scan(&status)
		if err == nil && runledger.ExecutionStatus(status).Terminal() {
			break
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case err := <-errs:
			close(done)
			wg.Wait()
			<-injected
			require.NoError(t, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	<-injected
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, ctx.Err(), "the run did not finish in %s", faultDeadline)
	// A last Rescue finishes any roll-up lost to a fault.
	_, err := f.exec.Rescue(context.Background())
	require.NoError(t, err)
}

// worker claims, works and reports like a well-behaved worker process.
func (f *faultRun) worker(ctx context.Context, name string, seed uint64, done <-chan struct{}) error {
	d, err := openWorkerDB(ctx, f.workerURL)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	x := execution.New(d, execution.Options{RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	defer func() { _ = x.Close() }()
	rng := rand.New(rand.NewPCG(seed, 9))
	for {
		select {
		case <-done:
			return nil
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		got, err := x.Claim(ctx, name, faultClaim, faultLease)
		if err != nil {
			if errors.Is(err, runledger.ErrTransient) {
				f.transient.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return fmt.Errorf("%s: claim: %w", name, err)
		}
		if len(got) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var ok []execution.Result
		var bad []execution.Failure
		for _, c := range got {
			if rng.IntN(8) == 0 {
				bad = append(bad, execution.Failure{ID: c.ID, Attempt: c.Attempt, Error: "flaky"})
			} else {
				ok = append(ok, execution.Result{ID: c.ID, Attempt: c.Attempt, Payload: json.RawMessage(`{"by":"` + name + `"}`)})
			}
		}
		if len(ok) > 0 {
			rep, err := f.report(ctx, name, func() (execution.Report, error) { return x.Complete(ctx, name, ok) })
			if err != nil {
				return err
			}
			f.tell(name, append(rep.Succeeded, rep.Replayed...))
		}
		if len(bad) > 0 {
			if _, err := f.report(ctx, name, func() (execution.Report, error) { return x.Fail(ctx, name, bad) }); err != nil {
				return err
			}
		}
	}
}

// report calls send until it gives an answer: retried on ErrTransient, the
// lost items dropped on ErrLeaseLost.
func (f *faultRun) report(ctx context.Context, name string, send func() (execution.Report, error)) (execution.Report, error) {
	for {
		rep, err := send()
		var lost *execution.LeaseLostError
		switch {
		case err == nil:
		case errors.As(err, &lost):
			f.lost.Add(int64(len(lost.IDs)))
		case errors.Is(err, runledger.ErrTransient) && ctx.Err() == nil:
			if len(rep.Succeeded)+len(rep.Failed)+len(rep.Retrying)+len(rep.Cancelled)+len(rep.Replayed) > 0 {
				return rep, fmt.Errorf("%s: a report came back with an error: %w", name, err)
			}
			f.transient.Add(1)
			time.Sleep(20 * time.Millisecond)
			continue
		default:
			return rep, fmt.Errorf("%s: report: %w", name, err)
		}
		f.replayed.Add(int64(len(rep.Replayed)))
		return rep, nil
	}
}

func (f *faultRun) tell(worker string, ids []uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if prev, ok := f.told[id]; ok && prev != worker {
			f.doubles = append(f.doubles, fmt.Sprintf("%s told to %s and %s", id, prev, worker))
		}
		f.told[id] = worker
	}
}

// zombie claims items, stops reporting past its lease until Rescue took
// them back, then reports them: every one must come back lease lost.
func (f *faultRun) zombie(ctx context.Context) error {
	d, err := openWorkerDB(ctx, f.workerURL)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	x := execution.New(d, execution.Options{})
	defer func() { _ = x.Close() }()
	var got []execution.Claimed
	for i := 0; len(got) == 0; i++ {
		var err error
		got, err = x.Claim(ctx, "zombie", faultClaim, execution.MinLease)
		if err != nil && !errors.Is(err, runledger.ErrTransient) {
			return fmt.Errorf("zombie: claim: %w", err)
		}
		if i == 50 {
			return errors.New("zombie: claimed nothing")
		}
	}
	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.ID.String()
	}
	// Frozen until every item left running under its claim.
	for {
		var held int
		if err := d.SQL().QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE id::text = ANY($1) AND claimed_by = 'zombie' AND status = 'running'`,
			"{"+strings.Join(ids, ",")+"}").Scan(&held); err != nil {
			return err
		}
		if held == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	results := make([]execution.Result, len(got))
	for i, c := range got {
		results[i] = execution.Result{ID: c.ID, Attempt: c.Attempt}
	}
	rep, err := x.Complete(ctx, "zombie", results)
	var lost *execution.LeaseLostError
	if !errors.As(err, &lost) || len(lost.IDs) != len(got) {
		return fmt.Errorf("zombie: a late report must be lease lost for every item: report %+v, error %w", rep, err)
	}
	if !errors.Is(err, runledger.ErrLeaseLost) || errors.Is(err, runledger.ErrStale) {
		return fmt.Errorf("zombie: wrong sentinels: %w", err)
	}
	f.lost.Add(int64(len(lost.IDs)))
	return nil
}

// check verifies the ledger's invariants with plain SQL, and the workers'
// answers against what committed.
func (f *faultRun) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	q := f.plain
	one := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, q.QueryRowContext(ctx, query, args...).Scan(&n), query)
		return n
	}
	require.Empty(t, f.doubles, "an item was told succeeded to two workers")
	total := faultBatches * faultItemsPer
	require.Equal(t, total, one(`SELECT count(*) FROM item_execution WHERE run_id = $1`, f.run))
	require.Zero(t, one(`SELECT count(*) FROM item_execution
		WHERE NOT (status)::text = ANY ('{succeeded,failed,cancelled,timed_out,skipped}'::text[])`), "every item terminal")
	require.Zero(t, one(`SELECT count(*) FROM item_execution WHERE lease_expires_at IS NOT NULL OR finished_at IS NULL`), "no lease left, every item finished")

	// History: a chain from the creation row (no previous status, queued)
	// to the current status, every step legal.
	require.Zero(t, one(`
		WITH h AS (
			SELECT h.item_execution_id AS id, h.previous_status, h.new_status,
				lag(h.new_status) OVER w AS before,
				row_number() OVER w AS n,
				row_number() OVER (PARTITION BY h.item_execution_id ORDER BY h.changed_at DESC, h.id DESC) AS from_end
			FROM item_state_history h
			WINDOW w AS (PARTITION BY h.item_execution_id ORDER BY h.changed_at, h.id))
		SELECT count(*) FROM h JOIN item_execution ie ON ie.id = h.id
		WHERE h.previous_status IS DISTINCT FROM h.before
			OR (h.n = 1 AND h.new_status <> 'queued')
			OR (h.from_end = 1 AND h.new_status <> ie.status)
			OR (h.n > 1 AND (h.previous_status, h.new_status) NOT IN (`+legalPairs()+`))`), "history chains legally to the current status")
	require.Equal(t, total, one(`SELECT count(DISTINCT item_execution_id) FROM item_state_history`))
	require.Zero(t, one(`
		SELECT count(*) FROM item_execution ie
		WHERE ie.attempt_count <> (SELECT count(*) FROM item_state_history h WHERE h.item_execution_id = ie.id AND h.new_status = 'running')`),
		"attempt_count = running entries")
	require.Zero(t, one(`SELECT count(*) FROM (SELECT item_execution_id FROM item_state_history WHERE new_status = 'succeeded' GROUP BY 1 HAVING count(*) > 1) x`),
		"at most one success per item")

	// Every success a worker was told about committed, as that worker's.
	f.mu.Lock()
	ids := make([]string, 0, len(f.told))
	workers := make([]string, 0, len(f.told))
	for id, w := range f.told {
		ids = append(ids, id.String())
		workers = append(workers, w)
	}
	f.mu.Unlock()
	require.NotEmpty(t, ids)
	require.Zero(t, one(`
		SELECT count(*) FROM unnest($1::uuid[], $2::text[]) AS t(id, worker)
		LEFT JOIN item_execution ie ON ie.id = t.id
		LEFT JOIN item_state_history h ON h.item_execution_id = t.id AND h.new_status = 'succeeded'
		WHERE ie.status IS DISTINCT FROM 'succeeded' OR h.created_by IS DISTINCT FROM t.worker`,
		"{"+strings.Join(ids, ",")+"}", "{"+strings.Join(workers, ",")+"}"), "every success told is committed, by the worker told")
	// ... and every committed success was told to its worker (none applied
	// behind a worker's back, e.g. by an answer lost and never replayed).
	require.Equal(t, len(ids), one(`SELECT count(*) FROM item_execution WHERE status = 'succeeded'`), "every success was told")

	// Roll-up: batch executions and the run follow from their items.
	require.Zero(t, one(`
		WITH want AS (
			SELECT batch_execution_id AS id,
				CASE WHEN bool_or(status IN ('failed', 'timed_out')) THEN 'failed'
					WHEN bool_or(status = 'cancelled') THEN 'cancelled' ELSE 'succeeded' END AS status
			FROM item_execution GROUP BY 1)
		SELECT count(*) FROM batch_execution b JOIN want w ON w.id = b.id
		WHERE b.status <> w.status OR b.finished_at IS NULL`), "batch executions roll up their items")
	require.Zero(t, one(`
		SELECT count(*) FROM run r
		WHERE r.status <> (SELECT CASE WHEN bool_or(status IN ('failed', 'timed_out')) THEN 'failed'
				WHEN bool_or(status = 'cancelled') THEN 'cancelled' ELSE 'succeeded' END FROM item_execution WHERE run_id = r.id)
			OR r.finished_at IS NULL`), "the run rolls up its items")
	p, err := f.exec.Progress(ctx, f.run)
	require.NoError(t, err)
	rows, err := q.QueryContext(ctx, `SELECT status, count(*) FROM item_execution WHERE run_id = $1 GROUP BY 1`, f.run)
	require.NoError(t, err)
	defer rows.Close()
	direct := execution.Counts{}
	for rows.Next() {
		var (
			s runledger.ExecutionStatus
			n int64
		)
		require.NoError(t, rows.Scan(&s, &n))
		direct[s] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, direct, p.Counts, "Progress equals a direct count")
}

// legalPairs renders the transition table as SQL row values.
func legalPairs() string {
	var pairs []string
	for _, from := range runledger.AllStatuses {
		for _, to := range runledger.AllStatuses {
			if from != to && runledger.CanTransition(from, to) {
				pairs = append(pairs, fmt.Sprintf("('%s', '%s')", from, to))
			}
		}
	}
	return strings.Join(pairs, ", ")
}

// lossyProxy forwards PostgreSQL connections and, with probability drop,
// cuts one just before the server's answer to a statement that changed rows
// reaches the client: the change committed, the client never hears of it.
type lossyProxy struct {
	ln      net.Listener
	target  string
	drop    atomic.Uint64 // the probability, in millionths
	all     atomic.Bool   // cut before every answer, changes or not
	dropped atomic.Int64
}

func startLossyProxy(t *testing.T, target string, p float64) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	px := &lossyProxy{ln: ln, target: target}
	px.drop.Store(uint64(p * 1e6))
	t.Cleanup(func() {
		_ = ln.Close()
		t.Logf("proxy: %d answers dropped after commit", px.dropped.Load())
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go px.serve(c)
		}
	}()
	return px
}

func (px *lossyProxy) addr() string { return px.ln.Addr().String() }

func (px *lossyProxy) serve(client net.Conn) {
	defer func() { _ = client.Close() }()
	server, err := net.Dial("tcp", px.target)
	if err != nil {
		return
	}
	defer func() { _ = server.Close() }()
	go func() {
		_, _ = io.Copy(server, client)
		_ = server.Close()
	}()
	// Server to client, message by message: hold each response until its
	// ReadyForQuery, then pass it on, or cut the connection.
	var held []byte
	changed := false
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	header := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, header); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(header[1:])) - 4
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(server, body); err != nil {
			return
		}
		held = append(append(held, header...), body...)
		switch header[0] {
		case 'C': // CommandComplete: "UPDATE n"
			tag := strings.TrimRight(string(body), "\x00")
			if strings.HasPrefix(tag, "UPDATE ") && tag != "UPDATE 0" {
				changed = true
			}
		case 'Z': // ReadyForQuery: the statement and its commit are done
			if px.all.Load() || changed && len(body) == 1 && body[0] == 'I' && rng.Float64()*1e6 < float64(px.drop.Load()) {
				px.dropped.Add(1)
				return // the answer is lost
			}
			if _, err := client.Write(held); err != nil {
				return
			}
			held, changed = held[:0], false
		}
	}
}
