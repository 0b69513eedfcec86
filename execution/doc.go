// Package execution starts runs, hands items to workers under leases,
// retries them, cancels runs, rolls statuses up and reports progress, on the
// runledger model. Every state change is recorded by the database itself
// (item_state_history), whoever makes it.
//
// The lifecycle of an item execution:
//
//	          StartRun
//	             │
//	             ▼
//	┌───────► queued ──────────── CancelRun ─────────► cancelled
//	│            │ Claim (lease, attempt+1)                ▲
//	│            ▼                                         │ next report
//	│         running ── Heartbeat (extend lease) ──┐      │ after CancelRun
//	│       ┌────┼─────────────┬──────────────┐     │      │
//	│ Complete   Fail          Fail          lease ─┘ ─────┘
//	│       │    (attempts     (no attempts  expires: Rescue
//	│       ▼     left)         left, or          │
//	│  succeeded     │          non-retryable)    ├── attempts left ──► retrying
//	│                ▼              ▼             └── none left ──────► timed_out
//	│            retrying        failed
//	│   (not_before = now + backoff)
//	└──── Claim, once not_before has passed
//
// A batch execution is running once any of its items runs and terminal once
// all its items are: succeeded when every item succeeded or was skipped,
// cancelled when the run was cancelled and none failed, else failed. The run
// rolls up its batch executions the same way and records an error summary.
// Roll-up happens after each change commits, in statements that only touch a
// batch execution or run row when it actually changes status, so there is no
// hot row that every completion must lock.
//
// # What a worker does with an error
//
// Claim, Heartbeat, Complete and Fail build their answer only after their
// statement committed, so an answer is always the truth. A worker tells the
// cases apart with errors.Is alone:
//
//   - nil: everything in the call was applied (or was already applied: see
//     Replayed below).
//   - runledger.ErrLeaseLost (*LeaseLostError, listing the items): this
//     worker no longer holds those items: another worker claimed them, or
//     their lease expired and Rescue took them back. Drop them: retrying
//     cannot succeed, and their side effects may be repeated by whoever has
//     them now. The rest of the call was applied and is in the Report.
//   - runledger.ErrTransient: a lock timeout, serialization failure,
//     deadlock, statement timeout or lost connection. Retry the same call
//     after a short backoff, within the lease (Heartbeat if needed).
//   - runledger.ErrUnavailable (which is also ErrTransient): the connection
//     was lost. If it was lost after the statement was sent, the outcome is
//     unknown: the change may have committed. Retrying the same call is
//     safe: reports are idempotent (next paragraph). A Claim whose outcome is
//     unknown may have claimed items that nobody will report; they come back
//     through Rescue when their lease expires.
//   - runledger.ErrInvalid: the call itself is wrong (bounds, bad payload);
//     nothing was sent to the database.
//
// With any error other than *LeaseLostError, the Report is empty. Heartbeat
// answers lease lost for every item the worker no longer holds, including
// one it finished itself (in a report whose answer was lost): re-send that
// report to learn its outcome.
//
// Reports are idempotent, keyed by (item execution, attempt): Result.Attempt
// and Failure.Attempt carry Claimed.Attempt (0 means the item's current
// attempt). A Complete or Fail that repeats a report this worker already
// made for the same attempt, the same way (succeeded or cancelled for
// Complete; retrying, failed or cancelled for Fail), changes nothing and
// lists the item in Report.Replayed, as applied. The check reads
// item_state_history: the n-th 'running' entry starts attempt n and the
// entry after it ends it, with created_by naming who ended it. Only an item
// another worker or Rescue took over is "lease lost".
//
// Bounds, checked before any statement: Claim takes 1 to MaxClaim items
// and allocates for the rows that arrive, not for n; leases are at least
// MinLease. After a change commits nothing can panic or turn it into an
// error: a roll-up that fails then is logged on Options.Logger and finished
// by Rescue's sweep.
//
// Progress sums status_count, an append-only ledger of count changes that
// the database's triggers keep per (batch execution, status), so its cost
// does not grow with the run's size.
//
// To process items in Go, register a Handler per automation on Workers and
// start a Runner (Client.NewRunner): it claims the items of those
// automations only (ClaimFor), runs at most HandlerOptions.Concurrency
// handlers per automation (claiming up to Concurrency items ahead of its
// free slots while handlers return faster than a claim takes), extends
// their leases, reports results in
// batches, wakes up on the notifications StartRun, RetryItems and CancelRun
// send in their transactions, hands unfinished items back at Stop, and, on
// one runner at a time across processes (a session advisory lock), runs
// Rescue, Purge and compaction. Claim, Heartbeat, Complete, Fail and
// Release are the primitives beneath it, for workers in other languages.
package execution
