package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger/execution"
)

// rate times fn and returns n / its duration in seconds.
func rate(n int, setup, fn func(ctx context.Context) error) func(ctx context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if setup != nil {
			if err := setup(ctx); err != nil {
				return 0, fmt.Errorf("setup: %w", err)
			}
		}
		start := time.Now()
		if err := fn(ctx); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
}

// millis times fn and returns its duration in milliseconds.
func millis(setup, fn func(ctx context.Context) error) func(ctx context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if setup != nil {
			if err := setup(ctx); err != nil {
				return 0, fmt.Errorf("setup: %w", err)
			}
		}
		start := time.Now()
		if err := fn(ctx); err != nil {
			return 0, err
		}
		return float64(time.Since(start).Microseconds()) / 1000, nil
	}
}

// ingest: AddItems against raw COPY and a raw multi-row INSERT of the same
// rows into the same item table, emptied before each repetition.
func (b *bench) ingest(ctx context.Context) error {
	d, _, err := b.scratch.runledger(ctx, "ingest", 4)
	if err != nil {
		return err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{})
	_, batches, err := newAutomation(ctx, d, "ingest", b.cfg.schema, 1)
	if err != nil {
		return err
	}
	batch, n, sqlDB := batches[0], b.cfg.ingestN, d.SQL()
	empty := func(ctx context.Context) error { return truncate(ctx, sqlDB, "item") }
	figs, err := b.compare(ctx, "items/s",
		variant{"ingest: AddItems", rate(n, empty, func(ctx context.Context) error {
			got, err := x.AddItems(ctx, batch, generate(n))
			if err == nil && got != int64(n) {
				err = fmt.Errorf("added %d of %d items", got, n)
			}
			return err
		})},
		variant{"ingest: raw COPY", rate(n, empty, func(ctx context.Context) error {
			return rawCopy(ctx, sqlDB, batch, n)
		})},
		variant{"ingest: raw multi-row INSERT (5000 rows)", rate(n, empty, func(ctx context.Context) error {
			return rawInsert(ctx, sqlDB, batch, n, 5000)
		})},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows,
		row{workload: fmt.Sprintf("ingest %s: AddItems vs raw COPY", count(n)), ours: figs[0], base: figs[1], unit: "items/s", target: target{ratioAtLeast, 0.8}},
		row{workload: fmt.Sprintf("ingest %s: AddItems vs multi-row INSERT", count(n)), ours: figs[0], base: figs[2], unit: "items/s"},
	)
	return nil
}

// rawCopy is lib/pq's COPY of the same columns AddItems writes, in one
// transaction, without validation.
func rawCopy(ctx context.Context, d *sql.DB, batch uuid.UUID, n int) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	stmt, err := tx.PrepareContext(ctx, pq.CopyIn("item", "batch_id", "sequence_number", "payload"))
	if err != nil {
		return err
	}
	id := batch.String()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, id, i, string(payload(i))); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	return tx.Commit()
}

// rawInsert writes the rows with multi-row INSERTs of chunk rows, in one
// transaction.
func rawInsert(ctx context.Context, d *sql.DB, batch uuid.UUID, n, chunk int) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	id := batch.String()
	args := make([]any, 0, 3*chunk)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		var q strings.Builder
		q.WriteString(`INSERT INTO item (batch_id, sequence_number, payload) VALUES `)
		args = args[:0]
		for i := lo; i < hi; i++ {
			if i > lo {
				q.WriteByte(',')
			}
			k := len(args)
			fmt.Fprintf(&q, "($%d,$%d,$%d)", k+1, k+2, k+3)
			args = append(args, id, i, string(payload(i)))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// start: StartRun (run, batch execution, item executions and their history
// and status counts) against one raw INSERT ... SELECT of the same item
// executions into a table of the same shape (columns, defaults, CHECKs,
// indexes, foreign keys) without runledger's triggers.
func (b *bench) start(ctx context.Context) error {
	d, _, err := b.scratch.runledger(ctx, "start", 4)
	if err != nil {
		return err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{})
	n, sqlDB := b.cfg.startN, d.SQL()
	auto, batches, err := newAutomation(ctx, d, "start", b.cfg.schema, 1)
	if err != nil {
		return err
	}
	if err := fill(ctx, x, batches, n); err != nil {
		return err
	}
	for _, stmt := range []string{
		`CREATE TABLE raw_item_execution (LIKE item_execution INCLUDING ALL)`,
		`ALTER TABLE raw_item_execution
			ADD FOREIGN KEY (run_id) REFERENCES run (id) ON DELETE CASCADE,
			ADD FOREIGN KEY (batch_execution_id) REFERENCES batch_execution (id) ON DELETE CASCADE,
			ADD FOREIGN KEY (item_id) REFERENCES item (id) ON DELETE CASCADE`,
	} {
		if _, err := sqlDB.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if err := analyze(ctx, sqlDB); err != nil {
		return err
	}
	var runID uuid.UUID
	figs, err := b.compare(ctx, "ms",
		variant{"start run: StartRun", millis(
			func(ctx context.Context) error { return truncate(ctx, sqlDB, "run") },
			func(ctx context.Context) error {
				_, err := x.StartRun(ctx, auto, execution.StartOptions{})
				return err
			})},
		variant{"start run: raw INSERT ... SELECT", millis(
			func(ctx context.Context) error {
				if err := truncate(ctx, sqlDB, "run"); err != nil {
					return err
				}
				if err := sqlDB.QueryRowContext(ctx, `INSERT INTO run (automation_id, status) VALUES ($1, 'queued') RETURNING id`, auto).Scan(&runID); err != nil {
					return err
				}
				_, err := sqlDB.ExecContext(ctx, `INSERT INTO batch_execution (run_id, batch_id, status) SELECT $1, id, 'queued' FROM batch WHERE automation_id = $2`, runID, auto)
				return err
			},
			func(ctx context.Context) error {
				res, err := sqlDB.ExecContext(ctx, `INSERT INTO raw_item_execution (run_id, automation_id, batch_execution_id, item_id, status, max_attempts, priority)
					SELECT $1, $2, be.id, i.id, 'queued', 3, 0
					FROM batch_execution be JOIN item i ON i.batch_id = be.batch_id
					WHERE be.run_id = $1 AND i.is_active`, runID, auto)
				if err != nil {
					return err
				}
				if got, _ := res.RowsAffected(); got != int64(n) {
					return fmt.Errorf("inserted %d of %d rows", got, n)
				}
				return nil
			})},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{workload: fmt.Sprintf("start run %s: StartRun vs raw INSERT…SELECT", count(n)), ours: figs[0], base: figs[1], unit: "ms", target: target{ratioAtMost, 2}})
	return nil
}

// count prints 100000 as 100k and 1000000 as 1M.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
