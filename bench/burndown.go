package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sync/errgroup"

	"github.com/runledger/runledger/execution"
)

// burndown: workers loop claim + complete in batches until nothing is left,
// through runledger, through a hand-written SKIP LOCKED loop, and through
// River (with a no-op worker, and with a worker that writes an audit row and
// completes its job in one transaction). Each side has its own database on
// the same server and starts each repetition from n freshly queued items
// (untimed), analyzed. runledger and the raw loop run at every batch size
// of -sweep; the server and client CPU per item are measured on every side.
func (b *bench) burndown(ctx context.Context) error {
	n := b.cfg.burnN
	maxWorkers := 0
	for _, w := range b.cfg.workers {
		maxWorkers = max(maxWorkers, w)
	}

	// Pools keep as many idle connections as they may open: a backend that
	// disconnected during a run would take its CPU time with it.
	f, err := b.newBurnFixture(ctx, "burndown", 2*maxWorkers)
	if err != nil {
		return err
	}
	defer f.d.Close()
	x, queue := f.x, f.queue

	raw, err := b.scratch.plain(ctx, "burndown_raw", 2*maxWorkers)
	if err != nil {
		return err
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, rawJobDDL); err != nil {
		return err
	}
	rawQueue := func(ctx context.Context) error {
		if _, err := raw.ExecContext(ctx, `TRUNCATE raw_job`); err != nil {
			return err
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO raw_job (payload) SELECT jsonb_build_object('n', g, 'name', 'item-' || lpad(g::text, 7, '0')) FROM generate_series(0, $1::int - 1) g`, n); err != nil {
			return err
		}
		return analyze(ctx, raw)
	}

	rv, err := b.newRiver(ctx, n)
	if err != nil {
		return err
	}
	defer rv.close()

	type side struct{ ours, raw string }
	sides := map[[2]int]side{}
	var variants []variant
	for _, w := range b.cfg.workers {
		for _, bt := range b.cfg.sweep {
			s := side{fmt.Sprintf("burn-down: runledger, %d workers, batch %d", w, bt), fmt.Sprintf("burn-down: raw SKIP LOCKED, %d workers, batch %d", w, bt)}
			sides[[2]int{w, bt}] = s
			variants = append(variants,
				variant{s.ours, b.timedRate(s.ours, b.scratch.dbName("burndown"), n, queue, func(ctx context.Context) error {
					return workers(ctx, w, n, func(ctx context.Context, name string) (int, error) {
						return runledgerStep(ctx, x, name, bt)
					})
				})},
				variant{s.raw, b.timedRate(s.raw, b.scratch.dbName("burndown_raw"), n, rawQueue, func(ctx context.Context) error {
					return workers(ctx, w, n, func(ctx context.Context, name string) (int, error) {
						return rawStep(ctx, raw, name, bt)
					})
				})},
			)
		}
	}
	riverName := fmt.Sprintf("burn-down: River, MaxWorkers %d", b.cfg.riverWorkers)
	auditName := fmt.Sprintf("burn-down: River + audit row (JobCompleteTx), MaxWorkers %d, %s jobs", b.cfg.riverWorkers, count(b.cfg.auditN))
	variants = append(variants,
		variant{riverName, func(ctx context.Context) (float64, error) { return rv.burndown(ctx, b, riverName, false) }},
		variant{auditName, func(ctx context.Context) (float64, error) { return rv.burndown(ctx, b, auditName, true) }},
	)
	figs, err := b.compare(ctx, "items/s", variants...)
	if err != nil {
		return err
	}
	byName := map[string]figure{}
	for i, v := range variants {
		byName[v.name] = figs[i]
	}
	cpu := func(name string) *cpuFigures {
		if f := b.cpu[name]; f != nil {
			return f
		}
		return &cpuFigures{}
	}
	river, audit := byName[riverName], byName[auditName]
	for _, w := range b.cfg.workers {
		for _, bt := range b.cfg.sweep {
			s := sides[[2]int{w, bt}]
			ours, rawFig := byName[s.ours], byName[s.raw]
			def := bt == b.cfg.batch
			at := func(t target) target {
				if def {
					return t
				}
				return target{}
			}
			label := fmt.Sprintf("burn-down %s, %d workers, batch %d", count(n), w, bt)
			b.rows = append(b.rows,
				row{workload: label + ": vs River", ours: ours, base: river, unit: "items/s", target: at(target{ratioAtLeast, 1})},
				row{workload: label + ": vs raw SKIP LOCKED", ours: ours, base: rawFig, unit: "items/s"},
			)
			if def {
				b.rows = append(b.rows,
					row{workload: label + ": vs River + audit row (" + count(b.cfg.auditN) + " jobs)", ours: ours, base: audit, unit: "items/s", target: target{ratioAtLeast, 8}})
			}
			b.rows = append(b.rows,
				row{workload: label + ": server CPU vs raw SKIP LOCKED", ours: cpu(s.ours).server, base: cpu(s.raw).server, unit: "µs/item", target: at(target{ratioAtMost, 3})},
				row{workload: label + ": client CPU vs raw SKIP LOCKED", ours: cpu(s.ours).client, base: cpu(s.raw).client, unit: "µs/item"},
			)
			if def {
				b.rows = append(b.rows,
					row{workload: label + ": server CPU vs River", ours: cpu(s.ours).server, base: cpu(riverName).server, unit: "µs/item"},
					row{workload: label + ": client CPU vs River", ours: cpu(s.ours).client, base: cpu(riverName).client, unit: "µs/item"},
					row{workload: label + ": server CPU vs River + audit row (" + count(b.cfg.auditN) + " jobs)", ours: cpu(s.ours).server, base: cpu(auditName).server, unit: "µs/item"},
				)
			}
		}
	}
	return nil
}

// workers runs w workers of step until each finds nothing left, and checks
// that n items were done in all.
func workers(ctx context.Context, w, n int, step func(ctx context.Context, name string) (int, error)) error {
	var done atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for i := range w {
		name := fmt.Sprintf("worker-%02d", i)
		g.Go(func() error {
			for {
				k, err := step(ctx, name)
				if err != nil {
					return err
				}
				if k == 0 {
					return nil
				}
				done.Add(int64(k))
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if got := done.Load(); got != int64(n) {
		return fmt.Errorf("%d workers did %d of %d items", w, got, n)
	}
	return nil
}

// runledgerStep claims up to batch items and completes them.
func runledgerStep(ctx context.Context, x *execution.Client, worker string, batch int) (int, error) {
	claimed, err := x.Claim(ctx, worker, batch, 5*time.Minute)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	results := make([]execution.Result, len(claimed))
	for i, c := range claimed {
		results[i].ID = c.ID
	}
	rep, err := x.Complete(ctx, worker, results)
	return len(rep.Succeeded), err
}

// rawJobDDL is the hand-written queue: the claim path indexed on exactly
// its ORDER BY, restricted to claimable rows.
const rawJobDDL = `
CREATE TABLE raw_job (
	id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	status text NOT NULL DEFAULT 'queued',
	payload jsonb,
	attempt int NOT NULL DEFAULT 0,
	claimed_by text,
	lease_expires_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz
);
CREATE INDEX raw_job_claim ON raw_job (id) WHERE status = 'queued'`

const rawClaimSQL = `
UPDATE raw_job SET status = 'running', attempt = attempt + 1, claimed_by = $1,
	lease_expires_at = now() + interval '5 minutes'
WHERE id IN (
	SELECT id FROM raw_job WHERE status = 'queued' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING id, payload`

const rawCompleteSQL = `
UPDATE raw_job SET status = 'succeeded', finished_at = now(), lease_expires_at = NULL
WHERE id = ANY($1) AND claimed_by = $2 AND status = 'running'`

// rawStep is the same claim + complete as runledgerStep in two plain
// statements.
func rawStep(ctx context.Context, d *sql.DB, worker string, batch int) (int, error) {
	rows, err := d.QueryContext(ctx, rawClaimSQL, worker, batch)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var (
			id      int64
			payload []byte
		)
		if err := rows.Scan(&id, &payload); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	if err := rows.Close(); err != nil || len(ids) == 0 {
		return 0, err
	}
	res, err := d.ExecContext(ctx, rawCompleteSQL, pq.Array(ids), worker)
	if err != nil {
		return 0, err
	}
	done, err := res.RowsAffected()
	return int(done), err
}
