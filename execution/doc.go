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
// Progress sums status_count, an append-only ledger of count changes that
// the database's triggers keep per (batch execution, status), so its cost
// does not grow with the run's size.
package execution
