package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
)

// RunnerOptions tune a Runner. Zero values take the defaults.
type RunnerOptions struct {
	// Name identifies the runner: its worker name in claimed_by (default
	// "runner-" and a random suffix). Two runners must not share a name.
	Name string
	// PollInterval is the fallback poll when no notification arrives
	// (default 5s): notifications (StartRun, CancelRun, RetryItems) and a
	// timer for the next retry coming due wake the runner before it.
	PollInterval time.Duration
	// Lease is the lease of claimed items (default 30s, at least MinLease),
	// extended every Lease/3 while their handlers run.
	Lease time.Duration
	// FlushInterval and FlushSize: results are reported in batches, one
	// Complete and one Fail statement per flush, FlushInterval (default
	// 5ms) after a batch's first result or at FlushSize results (default
	// 1000), whichever first. While busy (the previous flush held at least
	// 100 results) a batch may gather for 10 × FlushInterval instead: a
	// burn-down then reports in a few large statements, not many small
	// ones.
	FlushInterval time.Duration
	FlushSize     int
	// MaintenanceInterval is how often the elected runner runs Rescue,
	// Purge and compaction, and how often the others try to take over
	// (default 5s): it bounds a takeover after the leader dies.
	MaintenanceInterval time.Duration
	// Retention: the elected runner purges runs finished longer ago than
	// this (0: never). On the partitioned layout it first drops the months
	// whose runs all qualify (DropPartitions), then purges the rest.
	Retention time.Duration
	// PartitionsAhead: on the partitioned layout, the elected runner keeps
	// partitions for the current month and this many after it (default
	// DefaultPartitionsAhead; see EnsurePartitions).
	PartitionsAhead int
	// NoMaintenance keeps this runner out of the election.
	NoMaintenance bool
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	if o.Name == "" {
		o.Name = "runner-" + uuid.NewString()[:8]
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Lease < MinLease {
		o.Lease = MinLease
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Millisecond
	}
	if o.FlushSize <= 0 {
		o.FlushSize = 1000
	}
	if o.MaintenanceInterval <= 0 {
		o.MaintenanceInterval = 5 * time.Second
	}
	if o.PartitionsAhead <= 0 {
		o.PartitionsAhead = DefaultPartitionsAhead
	}
	return o
}

// RunnerStats are a Runner's counts since NewRunner.
type RunnerStats struct {
	Claimed    int64 // items claimed
	Succeeded  int64 // reported succeeded
	Failed     int64 // reported failed for good
	Retried    int64 // reported failed, to be retried
	Cancelled  int64 // ended cancelled
	HandedBack int64 // released unfinished: at Stop, or claimed ahead and left waiting behind slow handlers
	Rescued    int64 // taken back from dead workers by this runner's maintenance
	InFlight   int64 // handlers running now
	Leader     bool  // whether this runner runs maintenance now
}

// Runner processes items with the handlers of a Workers: per automation, at
// most Concurrency handlers at once, claimed with ClaimFor, leases extended
// while they run, results reported in batches; woken by notifications, a
// timer and a fallback poll; and, on one runner at a time across processes,
// maintenance. Create it with Client.NewRunner.
//
// While an automation's handlers return faster than a claim takes, the
// runner claims up to Concurrency items ahead of its free slots, to start as
// slots free; such an item still waiting a heartbeat period later (behind
// handlers that slowed down or hung) is handed back (Release, which counts
// the attempt). A graceful Stop runs the items claimed ahead; one that gives
// up hands them back with the running ones.
type Runner struct {
	c     *Client
	opts  RunnerOptions
	names []string
	hs    map[string]registered
	log   *slog.Logger

	claimed, succeeded, failed, retried, cancelled, handedBack, rescued, inFlight atomic.Int64
	leader                                                                        atomic.Bool

	mu      sync.Mutex
	running bool
	gen     *generation
}

// NewRunner returns a Runner for the handlers of ws (copied now). It does
// nothing until Start.
func (c *Client) NewRunner(ws *Workers, opts RunnerOptions) (*Runner, error) {
	opts = opts.withDefaults()
	if err := validWorker(opts.Name); err != nil {
		return nil, err
	}
	names, hs := ws.snapshot()
	if len(names) == 0 {
		return nil, &runledger.InvalidError{Field: "Workers", Reason: "register at least one handler (Workers.Handle)"}
	}
	return &Runner{c: c, opts: opts, names: names, hs: hs,
		log: c.opts.Logger.With("runner", opts.Name)}, nil
}

// Name is the runner's worker name.
func (r *Runner) Name() string { return r.opts.Name }

// Stats returns the runner's counts.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{
		Claimed: r.claimed.Load(), Succeeded: r.succeeded.Load(), Failed: r.failed.Load(),
		Retried: r.retried.Load(), Cancelled: r.cancelled.Load(), HandedBack: r.handedBack.Load(),
		Rescued: r.rescued.Load(), InFlight: r.inFlight.Load(), Leader: r.leader.Load(),
	}
}

// ErrRunnerRunning is returned by Start on a runner already started.
var ErrRunnerRunning = errors.New("execution: runner already started")

// Start starts the runner and returns once it listens for notifications;
// the work happens in background goroutines until Stop. ctx bounds only the
// start (its values are kept, its end does not stop the runner). Starting a
// running runner is ErrRunnerRunning; starting one again after Stop is
// allowed.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return ErrRunnerRunning
	}
	g, err := r.newGeneration(ctx)
	if err != nil {
		return err
	}
	r.gen = g
	r.running = true
	g.start()
	r.log.DebugContext(ctx, "runner started", "automations", r.names)
	return nil
}

// Stop stops claiming at once, waits until ctx ends for the running
// handlers (which also run the items the runner claimed ahead), then
// cancels their contexts (cause ErrRunnerStopped) and hands their items,
// and those claimed ahead that no handler reached, back at once (Release: retrying and claimable, the interrupted
// attempt counted but never failing the item). Results already returned are
// reported before Stop returns; no goroutine of the runner outlives it,
// except handlers that ignore their context, which Stop waits for a further
// second and then reports in its error. Stop on a runner that is not
// running (never started, or stopped already) does nothing.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return nil
	}
	r.running = false
	err := r.gen.stop(ctx)
	r.gen = nil
	r.leader.Store(false)
	return err
}

// generation is one Start..Stop of a Runner.
type generation struct {
	r        *Runner
	base     context.Context // Start's values, never cancelled by it
	loopCtx  context.Context // ends at Stop: no more claims
	loopStop context.CancelFunc
	workCtx  context.Context // ends when Stop gives up: handlers' parent
	workStop context.CancelCauseFunc
	listener *pq.Listener

	wake       chan struct{} // claim now
	beat       chan struct{} // heartbeat now (a cancel notification)
	outcomes   chan outcome
	reportStop chan struct{} // closed when no handler will report any more
	reportGone chan struct{} // closed when the reporter exited
	beatStop   chan struct{} // closed when no item needs its lease extended

	mu    sync.Mutex
	held  map[uuid.UUID]*job         // claimed, not yet reported
	busy  map[string]int             // running handlers per automation
	ready map[string][]*job          // claimed ahead, waiting for a free slot, per automation
	pace  map[string]*automationPace // per automation: how long claims and handlers take

	loops    sync.WaitGroup // fetch, heartbeat, listener, maintenance
	fetched  chan struct{}  // closed when the fetch loop exited: no handler starts after it
	handlers sync.WaitGroup
	reporter sync.WaitGroup
}

// job is a claimed item on its way through a handler and the reporter.
type job struct {
	item    Claimed
	ctx     context.Context // the handler's, made at the claim: a cancel reaches an item still waiting in ready
	cancel  context.CancelCauseFunc
	claimed time.Time // when it was claimed: an item claimed ahead waits in ready at most Lease/3
	done    bool      // the handler returned
	stopped bool      // it returned because Stop gave up: to hand back
}

// automationPace is what a generation knows of one automation's timing:
// the last claim's duration and a moving average of its handlers' (zero
// until one returned). It decides whether the runner claims ahead.
type automationPace struct {
	claim, handler time.Duration
}

// claimsAhead tells whether the runner claims up to Concurrency items more
// than its free slots: when handlers return faster than a claim takes,
// slots free while the next claim is still running, and the items claimed
// ahead are at hand for them. The claims are then larger and fewer, and the
// handlers do not wait for each claim. With slower handlers (or before one
// returned) it claims for the free slots only, so that no item waits in one
// runner's hands while another runner could start it. Items claimed ahead
// that still wait a heartbeat period (Lease/3) later are handed back, and
// the automation claims ahead again only once a handler has returned since
// (heartbeatLoop).
func (p *automationPace) claimsAhead() bool {
	return p.handler > 0 && p.handler < p.claim
}

// outcome is a handler's result for the reporter.
type outcome struct {
	item    Claimed
	payload []byte
	err     error // nil: succeeded
	final   bool  // NonRetryable
}

func (r *Runner) newGeneration(ctx context.Context) (*generation, error) {
	base := context.WithoutCancel(ctx)
	g := &generation{r: r, base: base,
		wake: make(chan struct{}, 1), beat: make(chan struct{}, 1),
		outcomes: make(chan outcome, r.opts.FlushSize), reportStop: make(chan struct{}),
		reportGone: make(chan struct{}), beatStop: make(chan struct{}), fetched: make(chan struct{}),
		held: map[uuid.UUID]*job{}, busy: map[string]int{}, ready: map[string][]*job{}, pace: map[string]*automationPace{}}
	g.loopCtx, g.loopStop = context.WithCancel(base)
	g.workCtx, g.workStop = context.WithCancelCause(base)
	g.listener = r.c.db.NewListener(func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventReconnected:
			// Notifications may have been missed: look now.
			g.poke(g.wake)
		case pq.ListenerEventConnectionAttemptFailed, pq.ListenerEventDisconnected:
			if err != nil {
				r.log.Warn("runner: notification connection lost; polling meanwhile", "error", err)
			}
		}
	})
	for _, ch := range []string{notifyWork, notifyCancel} {
		if err := g.listener.Listen(ch); err != nil {
			_ = g.listener.Close()
			g.loopStop()
			g.workStop(ErrRunnerStopped)
			return nil, fmt.Errorf("execution: runner %s: listen: %w", r.opts.Name, translate(ctx, err))
		}
	}
	return g, nil
}

func (g *generation) start() {
	g.loops.Add(3)
	go g.listen()
	go g.fetchLoop()
	go g.heartbeatLoop()
	g.reporter.Add(1)
	go g.reportLoop()
	if !g.r.opts.NoMaintenance {
		g.loops.Add(1)
		go g.maintenanceLoop()
	}
	g.poke(g.wake)
}

// poke signals ch without blocking.
func (g *generation) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (g *generation) stop(ctx context.Context) error {
	g.loopStop()
	_ = g.listener.Close()
	done := make(chan struct{})
	// handlers.Add runs in the fetch loop: waiting for the handlers is
	// only sound once it can start no more of them.
	go func() { <-g.fetched; g.handlers.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		g.workStop(ErrRunnerStopped)
		// Hand the unfinished items back now, whatever their handlers do.
		g.release()
		select {
		case <-done:
		case <-time.After(time.Second):
			errs = append(errs, fmt.Errorf("execution: runner %s: %d handler(s) ignored their context and still run", g.r.opts.Name, g.r.inFlight.Load()))
		}
	}
	// The reporter drains what is queued, flushes and exits; then no lease
	// needs extending.
	close(g.reportStop)
	g.reporter.Wait()
	close(g.beatStop)
	g.loops.Wait()
	g.workStop(ErrRunnerStopped)
	return errors.Join(errs...)
}

// release hands back the items whose handlers have not returned.
func (g *generation) release() {
	g.mu.Lock()
	var ids []uuid.UUID
	for id, j := range g.held {
		if !j.done || j.stopped {
			ids = append(ids, id)
			delete(g.held, id)
		}
	}
	g.mu.Unlock()
	g.handBack(ids, "items")
}

// handBack releases ids at once (retrying, claimable by any runner) and
// counts them; what names them in the log.
func (g *generation) handBack(ids []uuid.UUID, what string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(g.base, 10*time.Second)
	defer cancel()
	rep, err := g.r.c.Release(ctx, g.r.opts.Name, ids)
	g.r.handedBack.Add(int64(len(rep.Retrying)))
	g.r.cancelled.Add(int64(len(rep.Cancelled)))
	if err != nil && !errors.Is(err, runledger.ErrLeaseLost) {
		g.r.log.Warn("runner: handing back "+what+" failed; they return when their lease expires", "items", len(ids), "error", err)
		return
	}
	g.r.log.Debug("runner: handed back "+what, "items", len(rep.Retrying), "cancelled", len(rep.Cancelled))
}

// listen turns notifications into wake-ups.
func (g *generation) listen() {
	defer g.loops.Done()
	for {
		select {
		case <-g.loopCtx.Done():
			return
		case n, ok := <-g.listener.Notify:
			if !ok {
				return
			}
			if n == nil { // reconnected
				g.poke(g.wake)
				continue
			}
			switch n.Channel {
			case notifyWork:
				g.poke(g.wake)
			case notifyCancel:
				g.poke(g.beat)
			}
		}
	}
}

// fetchLoop claims for every automation with free slots whenever woken, by
// a notification, a freed slot, the next retry's timer or the poll.
func (g *generation) fetchLoop() {
	defer g.loops.Done()
	defer close(g.fetched)
	r := g.r
	poll := time.NewTimer(r.opts.PollInterval)
	defer poll.Stop()
	for {
		began := time.Now()
		full := g.fetch()
		if full {
			// Every slot is taken: wait for one to free (a wake-up), but
			// let a few free first so that claims stay batched.
			select {
			case <-g.loopCtx.Done():
				return
			case <-g.wake:
			}
			select {
			case <-g.loopCtx.Done():
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		next := g.nextDue(time.Since(began))
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		wait := r.opts.PollInterval
		if next > 0 && next < wait {
			wait = next
		}
		poll.Reset(wait)
		select {
		case <-g.loopCtx.Done():
			return
		case <-g.wake:
		case <-poll.C:
		}
	}
}

// fetch claims for each automation up to its free slots (and, while its
// handlers are quick, up to Concurrency more: automationPace.claimsAhead)
// and starts the handlers. It reports whether some automation had no room
// left.
func (g *generation) fetch() (someFull bool) {
	r := g.r
	for _, name := range r.names {
		if g.loopCtx.Err() != nil {
			return false
		}
		reg := r.hs[name]
		g.mu.Lock()
		p := g.paceOf(name)
		limit := reg.opts.Concurrency
		if p.claimsAhead() {
			limit *= 2
		}
		free := limit - g.busy[name] - len(g.ready[name])
		g.mu.Unlock()
		if free <= 0 {
			someFull = true
			continue
		}
		// A claim is never interrupted half-way (its items would wait for
		// their lease to expire): Stop waits for it, then hands them back.
		ctx, cancel := context.WithTimeout(g.base, r.opts.Lease)
		began := time.Now()
		items, err := r.c.ClaimFor(ctx, r.opts.Name, min(free, MaxClaim), r.opts.Lease, ClaimOptions{Automations: []string{name}})
		took := time.Since(began)
		cancel()
		if err != nil {
			r.log.Warn("runner: claim failed; retrying at the next wake-up", "automation", name, "error", err)
			continue
		}
		if len(items) == 0 {
			continue
		}
		r.claimed.Add(int64(len(items)))
		r.log.Debug("runner: claimed", "automation", name, "items", len(items))
		if len(items) == free {
			someFull = true
		}
		g.mu.Lock()
		if g.loopCtx.Err() != nil {
			// Stop began during the claim: none of these starts. Checked
			// under the lock, so that Stop's own hand-back (release) either
			// sees them or runs after this one.
			g.mu.Unlock()
			ids := make([]uuid.UUID, len(items))
			for i, it := range items {
				ids[i] = it.ID
			}
			g.handBack(ids, "items claimed during Stop")
			return false
		}
		p.claim = took
		for _, it := range items {
			ctx, cancel := context.WithCancelCause(g.workCtx)
			j := &job{item: it, ctx: ctx, cancel: cancel, claimed: began}
			g.held[it.ID] = j
			g.ready[name] = append(g.ready[name], j)
		}
		var start []*job
		for g.busy[name] < reg.opts.Concurrency && len(g.ready[name]) > 0 {
			start = append(start, g.take(name))
		}
		g.mu.Unlock()
		for _, j := range start {
			g.run(reg, j)
		}
	}
	return someFull
}

// paceOf returns the timing of automation name. g.mu is held.
func (g *generation) paceOf(name string) *automationPace {
	p := g.pace[name]
	if p == nil {
		p = &automationPace{}
		g.pace[name] = p
	}
	return p
}

// take moves the next claimed item of automation name from ready to a slot.
// g.mu is held.
func (g *generation) take(name string) *job {
	j := g.ready[name][0]
	g.ready[name][0] = nil
	g.ready[name] = g.ready[name][1:]
	g.busy[name]++
	g.r.inFlight.Add(1)
	return j
}

// run starts a handler goroutine on a slot taken for j (take). When the
// handler returns, the goroutine goes on with the next item claimed ahead,
// if any, so the slot stays busy without a new goroutine (and the handlers'
// WaitGroup is only added to by the fetch loop, which Stop waits for first).
func (g *generation) run(reg registered, j *job) {
	g.handlers.Add(1)
	go func() {
		defer g.handlers.Done()
		for j != nil {
			j = g.handle(reg, j)
		}
		g.poke(g.wake)
	}()
}

// handle runs one item's handler and hands its outcome to the reporter; it
// returns the automation's next item claimed ahead, with a slot taken for
// it, or nil when there is none or the runner is stopping.
func (g *generation) handle(reg registered, j *job) *job {
	r := g.r
	it := j.item
	var out outcome
	began := time.Now()
	if cause := context.Cause(j.ctx); cause != nil {
		// Its run was cancelled (or its lease lost, or Stop gave up)
		// while it waited in ready: no handler call; the outcome is the
		// cause, as a handler honouring its context would return.
		out = outcome{item: it, err: cause}
	} else {
		out = g.call(j.ctx, reg, it)
	}
	took := time.Since(began)
	cause := context.Cause(j.ctx)
	j.cancel(nil)
	g.mu.Lock()
	j.done = true
	g.busy[it.AutomationName]--
	if p := g.paceOf(it.AutomationName); p.handler == 0 {
		p.handler = max(took, time.Nanosecond)
	} else {
		p.handler = (7*p.handler + max(took, time.Nanosecond)) / 8
	}
	_, stillHeld := g.held[it.ID]
	switch {
	case !stillHeld:
		// Handed back by Stop already.
	case errors.Is(cause, ErrRunnerStopped):
		// Stop hands it back (release); nothing to report.
		j.stopped = true
		stillHeld = false
	case errors.Is(cause, runledger.ErrLeaseLost):
		// Lost: nothing to report.
		stillHeld = false
		delete(g.held, it.ID)
	}
	var next *job
	// Also while stopping: the items claimed ahead are this runner's to
	// finish, as the running ones are, until Stop gives up (workCtx).
	if g.workCtx.Err() == nil && len(g.ready[it.AutomationName]) > 0 {
		next = g.take(it.AutomationName)
	}
	g.mu.Unlock()
	r.inFlight.Add(-1)
	if stillHeld {
		select {
		case g.outcomes <- out:
		case <-g.reportGone: // a handler that outlived Stop: its lease expires
		}
	}
	return next
}

// handBackReady takes the items claimed ahead that match out of ready and
// hands them back (Release): retrying and claimable by any runner, their
// attempt counted but never failing them. The automations they belong to
// stop claiming ahead until one of their handlers returns again.
func (g *generation) handBackReady(match func(*job) bool) {
	g.mu.Lock()
	var ids []uuid.UUID
	for name, js := range g.ready {
		keep := js[:0]
		for _, j := range js {
			if !match(j) {
				keep = append(keep, j)
				continue
			}
			j.cancel(ErrRunnerStopped)
			g.paceOf(name).handler = 0
			if _, ok := g.held[j.item.ID]; ok { // not handed back by Stop already
				ids = append(ids, j.item.ID)
				delete(g.held, j.item.ID)
			}
		}
		clear(js[len(keep):])
		g.ready[name] = keep
	}
	g.mu.Unlock()
	g.handBack(ids, "items claimed ahead")
}

// call runs the handler with the timeout and turns its result into an
// outcome, recovering a panic.
func (g *generation) call(ctx context.Context, reg registered, it Claimed) (out outcome) {
	out.item = it
	if reg.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, reg.opts.Timeout, ErrHandlerTimeout)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			out.payload, out.final = nil, false
			out.err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	result, err := reg.h.Handle(ctx, it)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrHandlerTimeout) && !errors.Is(err, ErrHandlerTimeout) {
			err = fmt.Errorf("%w after %s: %w", ErrHandlerTimeout, reg.opts.Timeout, err)
		}
		out.err, out.final = err, IsNonRetryable(err)
	} else if err := checkResult(result); err != nil {
		out.err, out.final = NonRetryable(fmt.Errorf("execution: the handler returned an unusable result: %w", err)), true
	} else {
		out.payload = result
	}
	return out
}

// heartbeatLoop extends the leases of held items every Lease/3, and at
// once on a cancel notification, and cancels the handlers of items whose
// run was cancelled or whose lease was lost.
func (g *generation) heartbeatLoop() {
	defer g.loops.Done()
	r := g.r
	t := time.NewTicker(r.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-g.beatStop:
			return
		case <-t.C:
		case <-g.beat:
		}
		// Items claimed ahead that still wait for a slot a heartbeat
		// period later sit behind handlers slower than they were (or
		// hung): another runner may start them now. They are handed back
		// rather than kept.
		stale := time.Now().Add(-r.opts.Lease / 3)
		g.handBackReady(func(j *job) bool { return j.claimed.Before(stale) })
		g.mu.Lock()
		ids := make([]uuid.UUID, 0, len(g.held))
		for id := range g.held {
			ids = append(ids, id)
		}
		g.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		flagged, err := r.c.Heartbeat(g.workCtx, r.opts.Name, ids, r.opts.Lease)
		var lost *LeaseLostError
		if errors.As(err, &lost) {
			r.log.Warn("runner: leases lost; dropping the items", "items", len(lost.IDs))
			g.cancelJobs(lost.IDs, runledger.ErrLeaseLost)
		} else if err != nil {
			r.log.Warn("runner: heartbeat failed", "error", err)
		}
		g.cancelJobs(flagged, ErrRunCancelled)
	}
}

func (g *generation) cancelJobs(ids []uuid.UUID, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lost := map[uuid.UUID]bool{}
	for _, id := range ids {
		if j, ok := g.held[id]; ok && !j.done {
			j.cancel(cause)
			if errors.Is(cause, runledger.ErrLeaseLost) {
				lost[id] = true
			}
		}
	}
	if len(lost) == 0 {
		return
	}
	// A lost item still waiting for a slot is dropped now: no heartbeat
	// should claim it again, no handler see it.
	for name, js := range g.ready {
		keep := js[:0]
		for _, j := range js {
			if lost[j.item.ID] {
				delete(g.held, j.item.ID)
				continue
			}
			keep = append(keep, j)
		}
		clear(js[len(keep):])
		g.ready[name] = keep
	}
}

// nextDue returns how long until the next retry of the runner's
// automations comes due (0: none known). It reads the automations' claimable
// items that were not due when the claim it follows began (claimed is how
// long ago that was), so it runs only when a claim found nothing: an item
// that came due during that claim (a short backoff) is due now, and the
// loop claims again at once instead of sleeping its fallback poll; one that
// was already due then, and still not claimed, is not waited for.
func (g *generation) nextDue(claimed time.Duration) time.Duration {
	var ms sql.NullFloat64
	err := queryRow(g.loopCtx, g.r.c.sql, `
		SELECT extract(epoch FROM min(ie.not_before) - now()) * 1000
		FROM item_execution ie
		WHERE ie.automation_id IN (SELECT id FROM automation WHERE name = ANY ($1::text[]))
			AND (ie.status)::text = ANY ('{queued,retrying,scheduled}'::text[])
			AND ie.not_before > now() - $2 * interval '1 microsecond'`,
		[]any{pq.Array(g.r.names), claimed.Microseconds()}, &ms)
	if err != nil || !ms.Valid {
		return 0
	}
	return time.Duration(max(ms.Float64, 0)*float64(time.Millisecond)) + time.Millisecond
}
