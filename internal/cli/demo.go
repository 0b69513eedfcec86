package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/spf13/cobra"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/itemexecution"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/localpg"
	"github.com/runledger/runledger/internal/pgurl"
	"github.com/runledger/runledger/internal/report"
	"github.com/runledger/runledger/migrate"
)

// DemoDatabase is the database the demo uses when DATABASE_URL is not set.
const DemoDatabase = "runledger_demo"

// The demo's shape: two batches of invoices, worked by a few workers.
const (
	demoWorkers   = 4
	demoNorth     = 120
	demoSouth     = 80
	demoPoison    = 13 // south item that fails every attempt
	demoLease     = 2 * time.Second
	demoDeadLease = execution.MinLease
	// demoMaintenance is the runners' MaintenanceInterval: a takeover
	// and a rescue come within it.
	demoMaintenance = 200 * time.Millisecond
)

func newDemoCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create a demo database, record a run and print it as a tree",
		Args:  exactArgs(),
	}
	url := cmd.Flags().String("url", "", "database URL (default $DATABASE_URL, else database "+DemoDatabase+" on the local server, or on a private server started for the demo when none answers)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return demo(cmd.Context(), env, *url) }
	return cmd
}

func demo(ctx context.Context, env Env, url string) error {
	u := url
	if u == "" {
		u = env.Getenv("DATABASE_URL")
	}
	private := false
	if u == "" {
		// Zero-setup start: the local server, else a private one.
		srv, err := localpg.Ensure(ctx, localpg.OptionsFromEnv(env.Getenv, func(line string) { fmt.Fprintln(env.Stdout, line) }))
		if err != nil {
			return err
		}
		defer func() { _ = srv.Close() }()
		private = srv.Private
		if u, err = pgurl.WithDatabase(srv.URL, DemoDatabase); err != nil {
			return err
		}
		if err := ensureDatabase(ctx, env, srv.URL, DemoDatabase); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "database %s\n", pgurl.Describe(u))
	dir, err := migrate.Embedded()
	if err != nil {
		return err
	}
	if err := applyTo(ctx, env, u, dir, migrate.ApplyOptions{}); err != nil {
		return err
	}
	d, err := db.Open(ctx, db.Config{URL: u, PoolSize: demoWorkers + 2})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx = runledger.WithActor(ctx, "demo")
	exec := execution.New(d, execution.Options{RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	defer func() { _ = exec.Close() }()
	s := &scenario{env: env, url: u, d: d, exec: exec, suffix: uuid.NewString()[:8]}
	runID, err := s.run(ctx)
	if err != nil {
		return err
	}
	if err := s.runners(ctx); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout)
	if err := printRunTree(ctx, env.Stdout, d, exec, runID); err != nil {
		return err
	}
	if private {
		fmt.Fprintln(env.Stdout, "\nThe private server and its data are removed now; set DATABASE_URL to keep a demo database.")
		return nil
	}
	fmt.Fprintf(env.Stdout, "\nLook again with: runledger inspect run %s   (or: runledger progress %s)\n", runID, runID)
	return nil
}

// ensureDatabase creates database name on the server when it is missing.
func ensureDatabase(ctx context.Context, env Env, server, name string) error {
	admin, err := sql.Open("postgres", server)
	if err != nil {
		return pgurl.ErrMalformed
	}
	defer admin.Close()
	var exists bool
	if err := admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("connect to %s: %w (is PostgreSQL running? pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", pgurl.Describe(server), redactPing(err))
	}
	if exists {
		return nil
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	fmt.Fprintf(env.Stdout, "created database %s\n", name)
	return nil
}

type scenario struct {
	env    Env
	url    string // the database, for the runner process
	d      *db.DB
	exec   *execution.Client
	suffix string
}

// run records the demo: an automation with two batches of invoices, a run
// worked by concurrent workers (random failures that retry, one item that
// exhausts its attempts, a worker that dies and is rescued), linked to a
// Jenkins build, then a second run that an operator cancels.
func (s *scenario) run(ctx context.Context) (uuid.UUID, error) {
	out := s.env.Stdout
	eng, err := s.exec.RegisterEngine(ctx, "jenkins-demo", "jenkins")
	if err != nil {
		return uuid.Nil, err
	}
	auto, err := s.d.Automation.Create().
		SetName("invoice-processing-" + s.suffix).
		SetDescription("Reads invoices and books them").
		SetBatchSchema(map[string]any{"type": "object", "required": []any{"source"}, "properties": map[string]any{"source": map[string]any{"type": "string"}}}).
		SetItemSchema(map[string]any{"type": "object", "required": []any{"invoice", "amount"}, "properties": map[string]any{
			"invoice": map[string]any{"type": "string"}, "amount": map[string]any{"type": "number", "minimum": 0}}}).
		Save(ctx)
	if err != nil {
		return uuid.Nil, fmt.Errorf("create automation: %w", err)
	}
	var batches []*ent.Batch
	for i, b := range []struct {
		name string
		n    int
	}{{"north", demoNorth}, {"south", demoSouth}} {
		batch, err := s.d.Batch.Create().SetAutomation(auto).SetName(b.name).
			SetPayload(map[string]any{"source": "sftp://invoices/" + b.name}).Save(ctx)
		if err != nil {
			return uuid.Nil, fmt.Errorf("create batch: %w", err)
		}
		n, err := s.exec.AddItems(ctx, batch.ID, invoices(1000*(i+1), b.n))
		if err != nil {
			return uuid.Nil, err
		}
		batches = append(batches, batch)
		fmt.Fprintf(out, "batch %s: %d items added\n", b.name, n)
	}

	run, err := s.exec.StartRun(ctx, auto.ID, execution.StartOptions{CorrelationID: "demo-" + s.suffix, MaxAttempts: 3})
	if err != nil {
		return uuid.Nil, err
	}
	build := fmt.Sprintf("invoices#%d", rand.IntN(9000)+1000)
	inst, err := s.exec.AttachInstance(ctx, run.ID, eng.ID, build, map[string]any{"url": "https://jenkins.example/job/invoices/"})
	if err != nil {
		return uuid.Nil, err
	}
	for _, word := range []string{"in queue", "building"} {
		if _, err := s.exec.SyncInstance(ctx, inst.ID, word, time.Now()); err != nil {
			return uuid.Nil, err
		}
	}
	fmt.Fprintf(out, "run %s started: %d items, %d workers (worker-%d will die holding its items)\n", run.ID, demoNorth+demoSouth, demoWorkers, demoWorkers)
	rescued, err := s.work(ctx, run.ID, demoNorth+demoSouth)
	if err != nil {
		return uuid.Nil, err
	}
	fmt.Fprintf(out, "rescued %d item(s) whose lease expired when worker-%d died; they were retried\n", rescued, demoWorkers)
	p, err := s.exec.Progress(ctx, run.ID)
	if err != nil {
		return uuid.Nil, err
	}
	result := "SUCCESS"
	if p.Counts[runledger.StatusFailed] > 0 {
		result = "UNSTABLE"
	}
	if _, err := s.exec.SyncInstance(ctx, inst.ID, result, time.Now()); err != nil {
		return uuid.Nil, err
	}

	// A second run over north, cancelled by an operator while a worker holds items.
	second, err := s.exec.StartRun(ctx, auto.ID, execution.StartOptions{Batches: []uuid.UUID{batches[0].ID}, CorrelationID: "demo-cancel-" + s.suffix})
	if err != nil {
		return uuid.Nil, err
	}
	held, err := s.exec.Claim(ctx, "worker-1", 5, demoLease)
	if err != nil {
		return uuid.Nil, err
	}
	cres, err := s.exec.CancelRun(runledger.WithActor(ctx, "operator"), second.ID, "operator: wrong input file")
	if err != nil {
		return uuid.Nil, err
	}
	results := make([]execution.Result, len(held))
	for i, c := range held {
		results[i] = execution.Result{ID: c.ID}
	}
	if _, err := s.exec.Complete(ctx, "worker-1", results); err != nil {
		return uuid.Nil, err
	}
	p2, err := s.exec.Progress(ctx, second.ID)
	if err != nil {
		return uuid.Nil, err
	}
	fmt.Fprintf(out, "run %s cancelled (%d at once, %d when their worker reported): [%s] %s\n", second.ID, cres.Cancelled, cres.Flagged, p2.Status, report.CountsLine(p2.Counts))
	return run.ID, nil
}

// invoices yields n item payloads, numbered from first.
func invoices(first, n int) iter.Seq2[execution.NewItem, error] {
	return func(yield func(execution.NewItem, error) bool) {
		for i := range n {
			p, _ := json.Marshal(map[string]any{"invoice": fmt.Sprintf("INV-%d", first+i), "amount": 10 * (i + 1)})
			if !yield(execution.NewItem{SequenceNumber: int32(i), Payload: p}, nil) {
				return
			}
		}
	}
}

// work runs the workers, a rescuer and a progress bar until every item of
// the run is finished, and returns how many items the rescuer took back.
func (s *scenario) work(ctx context.Context, runID uuid.UUID, total int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		rescued  int
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil && !errors.Is(err, context.Canceled) {
			firstErr = err
		}
		cancel()
	}
	// The worker that dies claims first, so that it holds items whatever
	// the scheduler does with the others.
	if err := s.worker(ctx, demoWorkers); err != nil {
		return 0, err
	}
	for w := 1; w < demoWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.worker(ctx, w); err != nil {
				fail(err)
			}
		}()
	}
	// The rescuer takes back the dead worker's items once their lease ends.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				res, err := s.exec.Rescue(ctx)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				rescued += res.Retrying + res.TimedOut
				mu.Unlock()
			}
		}
	}()
	err := s.progressBar(ctx, runID, total)
	cancel()
	wg.Wait()
	if firstErr != nil {
		return rescued, firstErr
	}
	return rescued, err
}

// worker claims and reports items until the context ends. The last worker
// claims once and dies without reporting.
func (s *scenario) worker(ctx context.Context, n int) error {
	name := fmt.Sprintf("worker-%d", n)
	if n == demoWorkers {
		_, err := s.exec.Claim(ctx, name, 5, demoDeadLease)
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		items, err := s.exec.Claim(ctx, name, 10, demoLease)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var ok []execution.Result
		var bad []execution.Failure
		for _, it := range items {
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // the work
			var p struct{ Invoice string }
			_ = json.Unmarshal(it.Payload, &p)
			switch {
			case p.Invoice == fmt.Sprintf("INV-%d", 2000+demoPoison):
				bad = append(bad, execution.Failure{ID: it.ID, Error: "invoice total does not match its lines"})
			case it.Attempt == 1 && rng.IntN(100) < 8: // flaky once, fine on retry
				bad = append(bad, execution.Failure{ID: it.ID, Error: "timeout talking to the ledger service"})
			default:
				ok = append(ok, execution.Result{ID: it.ID, Payload: json.RawMessage(`{"booked":true}`)})
			}
		}
		if _, err := s.exec.Complete(ctx, name, ok); err != nil {
			return err
		}
		if _, err := s.exec.Fail(ctx, name, bad); err != nil {
			return err
		}
	}
	return nil
}

// progressBar redraws the run's progress until every item is finished.
// On a terminal it redraws one line in place; otherwise it writes only the
// final state, as one line.
func (s *scenario) progressBar(ctx context.Context, runID uuid.UUID, total int) error {
	live := s.env.IsTerminal(s.env.Stdout)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		p, err := s.exec.Progress(ctx, runID)
		if err != nil {
			return err
		}
		finished := p.Counts.Finished() >= int64(total)
		if live || finished {
			drawBar(s.env.Stdout, p.Counts, total, live)
		}
		if finished {
			fmt.Fprintln(s.env.Stdout)
			return nil
		}
		select {
		case <-ctx.Done():
			if live {
				fmt.Fprintln(s.env.Stdout)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// drawBar writes the bar; live starts it with a carriage return so the next
// one overwrites it.
func drawBar(w io.Writer, c execution.Counts, total int, live bool) {
	const width = 30
	done := int(c.Finished())
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	if live {
		fmt.Fprint(w, "\r")
	}
	fmt.Fprintf(w, "[%s%s] %3d/%d  succeeded %d  running %d  retrying %d  failed %d ",
		strings.Repeat("█", filled), strings.Repeat("░", width-filled), done, total,
		c[runledger.StatusSucceeded], c[runledger.StatusRunning], c[runledger.StatusRetrying], c[runledger.StatusFailed])
}

// runners shows the Runner on a second automation: host-3, a separate
// process (this binary re-executed) and the elected maintainer, takes the
// first items; its handlers then hang, and host-1 and host-2 (in this
// process) process the rest; host-2 stops mid-run and hands its unfinished
// items back at once; host-3 is killed with SIGKILL, no Stop, no hand-back:
// host-1 takes over maintenance, and its items come back once their lease
// expires; host-1 finishes. Then a run is cancelled while handlers run, and
// the cancel reaches their context.
func (s *scenario) runners(ctx context.Context) error {
	out := s.env.Stdout
	auto, err := s.d.Automation.Create().SetName("receipt-matching-" + s.suffix).Save(ctx)
	if err != nil {
		return fmt.Errorf("create automation: %w", err)
	}
	batch, err := s.d.Batch.Create().SetAutomation(auto).SetName("receipts").Save(ctx)
	if err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	if _, err := s.exec.AddItems(ctx, batch.ID, invoices(5000, 60)); err != nil {
		return err
	}

	// host-3 first, alone, so that it is elected and takes the first items.
	proc, err := startRunnerProcess(s.env, s.url, auto.Name, "host-3")
	if err != nil {
		return err
	}
	defer func() { _ = proc.kill() }()
	if _, err := proc.await(ctx, procStarted, 1, nil); err != nil {
		return err
	}
	// Its first election comes at once; the lock is taken only when some
	// other program runs runners on this database.
	procLeads, err := proc.await(ctx, procLeader, 1, time.After(10*time.Second))
	if err != nil {
		return err
	}
	run, err := s.exec.StartRun(ctx, auto.ID, execution.StartOptions{})
	if err != nil {
		return err
	}
	if _, err := proc.await(ctx, procBusy, demoProcConcurrency, nil); err != nil {
		return err
	}
	if err := s.waitCount(ctx, run.ID, runledger.StatusSucceeded, demoProcQuick); err != nil {
		return err
	}

	var slow atomic.Bool
	causes := make(chan error, 8)
	ws := execution.NewWorkers()
	ws.Handle(auto.Name, execution.HandlerFunc(func(ctx context.Context, _ execution.Claimed) (json.RawMessage, error) {
		if slow.Load() {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return nil, context.Cause(ctx)
		}
		select {
		case <-time.After(10 * time.Millisecond): // the work
			return json.RawMessage(`{"matched":true}`), nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}), execution.HandlerOptions{Concurrency: 4, Timeout: 10 * time.Second})
	opts := execution.RunnerOptions{Lease: demoLease, MaintenanceInterval: demoMaintenance}
	var rs []*execution.Runner
	for _, name := range []string{"host-1", "host-2"} {
		opts.Name = name
		r, err := s.exec.NewRunner(ws, opts)
		if err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = r.Stop(ctx) }()
		rs = append(rs, r)
	}
	host1, host2 := rs[0], rs[1]
	role := ""
	if procLeads {
		role = ", the elected maintainer"
	}
	fmt.Fprintf(out, "runners: %s on host-1 and host-2 (this process) and host-3 (process %d%s); host-3 handled %d items, then %d of its handlers hung\n",
		auto.Name, proc.cmd.Process.Pid, role, demoProcQuick, demoProcConcurrency)

	// Mid-run: host-2 has finished items and holds others (or nothing is
	// left to claim).
	if err := s.waitMidRun(ctx, run.ID, host2); err != nil {
		return err
	}
	// host-2 goes away mid-run: Stop gives its handlers no time.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := host2.Stop(gone); err != nil {
		return err
	}
	fmt.Fprintf(out, "runners: host-2 stopped mid-run and handed %d item(s) back at once\n", host2.Stats().HandedBack)

	// host-3 is killed: its items come back only through maintenance, once
	// their lease has expired.
	if err := proc.kill(); err != nil {
		return err
	}
	killed := time.Now()
	held, err := s.d.ItemExecution.Query().Where(itemexecution.RunID(run.ID), itemexecution.ClaimedBy("host-3"),
		itemexecution.StatusEQ(runledger.StatusRunning)).Count(ctx)
	if err != nil {
		return fmt.Errorf("count host-3's items: %w", err)
	}
	if err := s.waitRescued(ctx, run.ID, host1, held, procLeads); err != nil {
		return err
	}
	back := time.Since(killed).Round(10 * time.Millisecond)
	rescue := fmt.Sprintf("the elected maintainer rescued them %s later", back)
	switch {
	case procLeads:
		rescue = fmt.Sprintf("host-1 took over maintenance and rescued them %s later", back)
	case host1.Stats().Rescued > 0:
		rescue = fmt.Sprintf("host-1 rescued them %s later", back)
	}
	fmt.Fprintf(out, "runners: host-3 killed (SIGKILL, no Stop) holding %d item(s): %s (lease %s, maintenance every %s)\n",
		held, rescue, execution.MinLease, demoMaintenance)
	if err := s.waitRun(ctx, run.ID); err != nil {
		return err
	}
	p, err := s.exec.Progress(ctx, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "runners: host-1 finished: [%s] %s\n", p.Status, report.CountsLine(p.Counts))

	// A run cancelled while its handlers run: the cancel reaches them.
	slow.Store(true)
	second, err := s.exec.StartRun(ctx, auto.ID, execution.StartOptions{})
	if err != nil {
		return err
	}
	if err := poll(ctx, 5*time.Millisecond, func() (bool, error) { return host1.Stats().InFlight >= 4, nil }); err != nil {
		return err
	}
	if _, err := s.exec.CancelRun(runledger.WithActor(ctx, "operator"), second.ID, "operator: duplicate upload"); err != nil {
		return err
	}
	cause := <-causes
	if err := s.waitRun(ctx, second.ID); err != nil {
		return err
	}
	fmt.Fprintf(out, "runners: run %s cancelled while 4 handlers ran; their context ended with %q\n", second.ID, cause)
	return host1.Stop(ctx)
}

// waitMidRun waits until r has finished items and holds others, or until
// the run has no item left to claim.
func (s *scenario) waitMidRun(ctx context.Context, runID uuid.UUID, r *execution.Runner) error {
	return poll(ctx, 2*time.Millisecond, func() (bool, error) {
		if st := r.Stats(); st.Succeeded > 0 && st.InFlight > 0 {
			return true, nil
		}
		p, err := s.exec.Progress(ctx, runID)
		if err != nil {
			return false, err
		}
		return p.Counts[runledger.StatusQueued]+p.Counts[runledger.StatusRetrying] == 0, nil
	})
}

// waitRescued waits until the items a killed runner held are rescued: by
// host1, when the killed one was the maintainer (host1 is the only runner
// left), else by whichever runner maintains.
func (s *scenario) waitRescued(ctx context.Context, runID uuid.UUID, host1 *execution.Runner, held int, host1Only bool) error {
	return poll(ctx, 5*time.Millisecond, func() (bool, error) {
		if host1.Stats().Rescued >= int64(held) {
			return true, nil
		}
		if host1Only {
			return false, nil
		}
		n, err := s.d.ItemExecution.Query().Where(itemexecution.RunID(runID), itemexecution.ClaimedBy("host-3"),
			itemexecution.StatusEQ(runledger.StatusRunning)).Count(ctx)
		return n == 0, err
	})
}

// waitCount waits until at least n items of the run have status st.
func (s *scenario) waitCount(ctx context.Context, runID uuid.UUID, st runledger.ExecutionStatus, n int64) error {
	return poll(ctx, 10*time.Millisecond, func() (bool, error) {
		p, err := s.exec.Progress(ctx, runID)
		if err != nil {
			return false, err
		}
		return p.Counts[st] >= n, nil
	})
}

// poll calls done every interval until it returns true or an error, or ctx
// ends.
func poll(ctx context.Context, interval time.Duration, done func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitRun waits until the run is finished.
func (s *scenario) waitRun(ctx context.Context, id uuid.UUID) error {
	for {
		r, err := s.d.Run.Get(ctx, id)
		if err != nil {
			return err
		}
		if r.Status.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
