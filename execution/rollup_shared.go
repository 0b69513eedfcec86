package execution

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// rollupGroup lets the concurrent reports of one Client share roll-ups, the
// way a database shares one WAL flush among the commits that wait for it.
//
// A roll-up has to begin after the report's commit: it counts the items of
// the batch executions in a snapshot that must see the report's changes
// (see rollupSQL). So a report hands its batch executions to the next round
// and waits for that round to end:
//
//   - when no round is running, the report runs its own round at once;
//   - when one is running, the report joins the next round, which collects
//     the batch executions of every report that arrives meanwhile and starts
//     when the running one ends: one of its waiters runs it for all.
//
// Every round begins after each of its reports joined it, hence after their
// commits, and a report returns only once its round has ended: the guarantee
// of a roll-up per report, for one statement pair per round instead of per
// report. Rounds run one at a time per Client; with one report at a time
// this is the roll-up of before, with no wait.
type rollupGroup struct {
	mu      sync.Mutex
	running bool         // a round is running
	next    *rollupRound // the round that collects joiners while one runs; nil when none has joined
	rounds  atomic.Int64 // rounds run, for tests
}

// rollupRound is the batch executions of one shared roll-up.
type rollupRound struct {
	ids  []uuid.UUID
	seen map[uuid.UUID]bool
	lead chan struct{} // one token: the waiter that takes it runs the round
	done chan struct{} // closed when the round has run; err is set then
	err  error
}

func newRollupRound() *rollupRound {
	return &rollupRound{seen: map[uuid.UUID]bool{}, lead: make(chan struct{}, 1), done: make(chan struct{})}
}

func (r *rollupRound) add(ids []uuid.UUID) {
	for _, id := range ids {
		if !r.seen[id] {
			r.seen[id] = true
			r.ids = append(r.ids, id)
		}
	}
}

// rollup finishes what the committed changes to these batch executions
// finished, in a round shared with the Client's concurrent reports, and
// returns when a roll-up that began after this call has ended.
func (c *Client) rollup(ctx context.Context, batchExecutions []uuid.UUID) error {
	if len(batchExecutions) == 0 {
		return nil
	}
	g := &c.rollups
	g.mu.Lock()
	r := g.next
	if r == nil {
		r = newRollupRound()
		g.next = r
	}
	r.add(batchExecutions)
	if !g.running {
		g.running, g.next = true, nil
		g.mu.Unlock()
		c.runRound(ctx, r)
		return r.err
	}
	g.mu.Unlock()
	// The waiters do not give up on a cancelled context: the roll-up
	// outlives the caller's context (bounded by rollupTimeout), as it did
	// unshared, and a token taken must be used.
	select {
	case <-r.lead:
		c.runRound(ctx, r)
	case <-r.done:
	}
	return r.err
}

// runRound runs r, then starts the round that collected joiners meanwhile
// (by handing its lead token to one of them), or marks the group idle.
func (c *Client) runRound(ctx context.Context, r *rollupRound) {
	g := &c.rollups
	g.rounds.Add(1)
	r.err = c.rollupNow(ctx, r.ids)
	close(r.done)
	g.mu.Lock()
	defer g.mu.Unlock()
	if next := g.next; next != nil {
		g.next = nil // next is closed to joiners: it starts now
		next.lead <- struct{}{}
		return
	}
	g.running = false
}
