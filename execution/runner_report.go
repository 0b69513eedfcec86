package execution

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
)

// busyFlush is the flush size from which the reporter counts as busy: the
// next batch may then wait longer (flushWait).
const busyFlush = 100

// busyWaitFactor: a busy reporter waits up to this many FlushIntervals for
// a batch to fill.
const busyWaitFactor = 10

// flushWait is how long the reporter lets a batch gather after its first
// outcome, given the size of the previous flush: FlushInterval, or, while
// busy (the previous flush had at least busyFlush outcomes), busyWaitFactor
// times that, so that a burn-down reports in a few large statements rather
// than many small ones (each statement and its commit has a fixed cost on
// the server), as River's batch completer does. A batch still goes as soon
// as it holds FlushSize outcomes, and a quiet runner reports within
// FlushInterval.
func flushWait(opts RunnerOptions, previous int) time.Duration {
	if previous >= busyFlush {
		return busyWaitFactor * opts.FlushInterval
	}
	return opts.FlushInterval
}

// reportLoop sends handlers' outcomes in batches: one Complete and one Fail
// per flush, after flushWait or at FlushSize outcomes, whichever first.
func (g *generation) reportLoop() {
	defer g.reporter.Done()
	defer close(g.reportGone)
	r := g.r
	var batch []outcome
	previous := 0 // size of the last flush
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(batch) > 0 {
			previous = len(batch)
			g.flush(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case out := <-g.outcomes:
			if len(batch) == 0 {
				timer.Reset(flushWait(r.opts, previous))
			}
			batch = append(batch, out)
			if len(batch) >= r.opts.FlushSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		case <-g.reportStop:
			timer.Stop()
			for {
				select {
				case out := <-g.outcomes:
					batch = append(batch, out)
					if len(batch) >= r.opts.FlushSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// reportPatience bounds the retries of one flush on transient errors.
const reportPatience = 30 * time.Second

// flush reports a batch: the successes with one Complete, the failures with
// one Fail, each with the attempt it reports, so that a retry after a lost
// answer is recognised (Report.Replayed) and never applied twice.
func (g *generation) flush(batch []outcome) {
	r := g.r
	var (
		results  []Result
		failures []Failure
	)
	for _, o := range batch {
		if o.err == nil {
			results = append(results, Result{ID: o.item.ID, Payload: o.payload, Attempt: o.item.Attempt})
			continue
		}
		failures = append(failures, Failure{ID: o.item.ID, Error: failureText(o.err), NonRetryable: o.final, Attempt: o.item.Attempt})
	}
	var reported []uuid.UUID
	if len(results) > 0 {
		ids := make([]uuid.UUID, len(results))
		for i, res := range results {
			ids[i] = res.ID
		}
		rep, ok := g.send("complete", ids, func(ctx context.Context) (Report, error) { return r.c.Complete(ctx, r.opts.Name, results) })
		if ok {
			reported = append(reported, ids...)
			g.count(rep)
		}
	}
	if len(failures) > 0 {
		ids := make([]uuid.UUID, len(failures))
		for i, f := range failures {
			ids[i] = f.ID
		}
		rep, ok := g.send("fail", ids, func(ctx context.Context) (Report, error) { return r.c.Fail(ctx, r.opts.Name, failures) })
		if ok {
			reported = append(reported, ids...)
			g.count(rep)
		}
		if len(rep.Retrying) > 0 {
			// The fetch loop may have looked for the next retry before
			// these were recorded: have it look again, so each is claimed
			// at its backoff rather than at the next poll.
			g.poke(g.wake)
		}
	}
	// Reported (or given up on: their lease brings them back) items are no
	// longer held.
	g.mu.Lock()
	for _, o := range batch {
		delete(g.held, o.item.ID)
	}
	g.mu.Unlock()
	r.log.Debug("runner: reported", "items", len(batch), "succeeded", len(results), "failed", len(failures), "applied", len(reported))
}

// send runs one report, retrying transient failures (the same call, with
// the same attempts, is idempotent) for up to reportPatience.
func (g *generation) send(what string, ids []uuid.UUID, call func(context.Context) (Report, error)) (Report, bool) {
	r := g.r
	deadline := time.Now().Add(reportPatience)
	wait := 10 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(g.base, reportPatience)
		rep, err := call(ctx)
		cancel()
		var lost *LeaseLostError
		switch {
		case err == nil:
			return rep, true
		case errors.As(err, &lost):
			r.log.Warn("runner: report found leases lost; those results are dropped", "report", what, "items", len(lost.IDs))
			return rep, true
		case errors.Is(err, runledger.ErrTransient) && time.Now().Before(deadline):
			r.log.Warn("runner: report failed; retrying", "report", what, "items", len(ids), "error", err)
			time.Sleep(wait)
			wait = min(2*wait, time.Second)
		default:
			r.log.Error("runner: report failed; the items come back when their leases expire", "report", what, "items", len(ids), "error", err)
			return rep, false
		}
	}
}

func (g *generation) count(rep Report) {
	r := g.r
	r.succeeded.Add(int64(len(rep.Succeeded)))
	r.failed.Add(int64(len(rep.Failed)))
	r.retried.Add(int64(len(rep.Retrying)))
	r.cancelled.Add(int64(len(rep.Cancelled)))
	if n := len(rep.Failed) + len(rep.Retrying); n > 0 {
		r.log.Warn("runner: items failed", "retrying", len(rep.Retrying), "failed", len(rep.Failed))
	}
}

// maintenanceKey is the session advisory lock that elects the maintainer.
const maintenanceKey = "runledger.maintenance"

// maintenanceLoop tries every MaintenanceInterval to become the maintainer
// by taking a session advisory lock on a connection of its own; the
// maintainer runs Rescue, partition upkeep (the partitioned layout: the
// coming months' partitions, and the drop of expired months when Retention
// is set), Purge (RunnerOptions.Retention) and status_count compaction every
// MaintenanceInterval. The lock is the server's: when the
// maintainer's process dies, its session ends, the lock is free, and another
// runner takes over at its next try, within MaintenanceInterval. Items whose
// worker died come back within Lease + MaintenanceInterval.
func (g *generation) maintenanceLoop() {
	defer g.loops.Done()
	r := g.r
	var conn *sql.Conn
	defer func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(g.base, 5*time.Second)
			_, _ = conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
			cancel()
			_ = conn.Close()
		}
		r.leader.Store(false)
	}()
	t := time.NewTicker(r.opts.MaintenanceInterval)
	defer t.Stop()
	for {
		if conn == nil {
			conn = g.elect()
		} else if err := conn.PingContext(g.loopCtx); err != nil {
			// The session (and the lock with it) is gone.
			r.log.Warn("runner: maintenance connection lost; leadership dropped", "error", err)
			_ = conn.Close()
			conn = nil
			r.leader.Store(false)
		}
		if conn != nil {
			g.maintain()
		}
		select {
		case <-g.loopCtx.Done():
			return
		case <-t.C:
		}
	}
}

// elect tries to take the maintenance lock; it returns the connection that
// holds it, or nil.
func (g *generation) elect() *sql.Conn {
	r := g.r
	conn, err := r.c.sql.Conn(g.loopCtx)
	if err != nil {
		return nil
	}
	var got bool
	if err := conn.QueryRowContext(g.loopCtx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, maintenanceKey).Scan(&got); err != nil || !got {
		_ = conn.Close()
		return nil
	}
	r.leader.Store(true)
	r.log.Info("runner: elected to run maintenance")
	return conn
}

// maintain runs one round of maintenance.
func (g *generation) maintain() {
	r := g.r
	ctx := g.loopCtx
	res, err := r.c.Rescue(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.Error("runner: rescue failed", "error", err)
	}
	if n := res.Retrying + res.TimedOut + res.Cancelled; n > 0 {
		r.rescued.Add(int64(n))
		r.log.Warn("runner: rescued items of dead workers", "retrying", res.Retrying, "timed_out", res.TimedOut, "cancelled", res.Cancelled)
		g.poke(g.wake)
	}
	partitioned, err := r.c.Partitioned(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.Error("runner: read the table layout failed", "error", err)
	}
	if partitioned {
		months, err := r.c.EnsurePartitions(ctx, r.opts.PartitionsAhead)
		if err != nil && ctx.Err() == nil {
			r.log.Error("runner: creating partitions failed", "error", err)
		}
		for _, m := range months {
			r.log.Info("runner: created partitions", "month", m.Format("2006-01"))
		}
	}
	if partitioned && r.opts.Retention > 0 {
		d, err := r.c.DropPartitions(ctx, time.Now().Add(-r.opts.Retention))
		if err != nil && ctx.Err() == nil {
			r.log.Error("runner: dropping partitions failed", "error", err)
		}
		if len(d.Months) > 0 {
			r.log.Info("runner: dropped expired months", "months", len(d.Months), "first", d.Months[0].Format("2006-01"), "runs", d.Runs)
		}
	}
	if r.opts.Retention > 0 {
		p, err := r.c.Purge(ctx, time.Now().Add(-r.opts.Retention), PurgeOptions{})
		if err != nil && ctx.Err() == nil {
			r.log.Error("runner: purge failed", "error", err)
		} else if p.Runs > 0 {
			r.log.Debug("runner: purged", "runs", p.Runs, "item_executions", p.ItemExecutions)
		}
	}
	if err := r.c.CompactProgress(ctx); err != nil && ctx.Err() == nil {
		r.log.Error("runner: status_count compaction failed", "error", err)
	}
}
