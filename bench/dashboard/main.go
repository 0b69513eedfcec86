// Command dashboard measures the server time of runledger's dashboard
// (internal/web) on a large ledger: the run page of a 1M-item run and the
// overview with 10k runs, among other pages and API endpoints.
//
//	cd bench && nice -n 10 go run ./dashboard                   # 1M items, 10k runs
//	cd bench && go run ./dashboard -items 100000 -runs 1000     # a quick look
//
// It loads a scratch database on the server (-server) set-based: the
// loading session runs with session_replication_role = replica, so neither
// the triggers nor the foreign-key checks run, and it writes the history
// rows (queued, running, then the outcome, spread over the run's hour) and
// the status counts itself, as the triggers would have. Then it analyzes,
// serves the dashboard in-process and times each request (the handler's
// time, measured around ServeHTTP: no network) -repeat times after a
// warm-up, and prints the median and the maximum. The database is dropped at
// the end unless -keep.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/web"
	"github.com/runledger/runledger/migrate"
)

type config struct {
	server      string
	items, runs int
	automations int
	repeat      int
	keep        bool
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.server, "server", "postgres://root@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to create the scratch database on")
	flag.IntVar(&cfg.items, "items", 1_000_000, "items of the big run")
	flag.IntVar(&cfg.runs, "runs", 10_000, "runs for the overview (besides the big one)")
	flag.IntVar(&cfg.automations, "automations", 100, "automations the runs belong to")
	flag.IntVar(&cfg.repeat, "repeat", 20, "timed requests per endpoint")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the scratch database")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "", log.Ltime)
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		logger.Printf("dashboard: %v", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer, logger *log.Logger) (err error) {
	admin, err := sql.Open("postgres", cfg.server)
	if err != nil {
		return err
	}
	defer admin.Close()
	var buf [4]byte
	_, _ = rand.Read(buf[:])
	name := "runledger_bench_" + hex.EncodeToString(buf[:]) + "_dashboard"
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return err
	}
	if !cfg.keep {
		defer func() {
			_, _ = admin.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
			logger.Printf("dropped %s", name)
		}()
	}
	u, err := url.Parse(cfg.server)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	d, err := db.Open(ctx, db.Config{URL: u.String(), PoolSize: 4, MaxOverflow: 4})
	if err != nil {
		return err
	}
	defer d.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, d.SQL(), dir, migrate.ApplyOptions{}); err != nil {
		return err
	}
	start := time.Now()
	big, err := load(ctx, d.SQL(), cfg, logger)
	if err != nil {
		return err
	}
	logger.Printf("loaded in %s; analyzing", time.Since(start).Round(time.Second))
	if _, err := d.SQL().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}

	x := execution.New(d, execution.Options{})
	defer x.Close()
	srv, err := web.New(web.Config{Read: x, Write: x, Token: "bench", Loopback: true, Logger: nil})
	if err != nil {
		return err
	}
	defer srv.Close()
	h := srv.Handler()
	var auto string
	if err := d.SQL().QueryRowContext(ctx, `SELECT name FROM automation ORDER BY name LIMIT 1 OFFSET 7`).Scan(&auto); err != nil {
		return err
	}
	targets := []struct{ what, path string }{
		{"run page, 1M-item run", "/runs/" + big.String()},
		{"run page live part (what SSE refreshes)", "/runs/" + big.String() + "/live"},
		{"GET /api/runs/{id} (1M-item run)", "/api/runs/" + big.String()},
		{"GET /api/runs/{id}/progress", "/api/runs/" + big.String() + "/progress"},
		{"GET /api/runs/{id}/charts", "/api/runs/" + big.String() + "/charts"},
		{"GET /api/runs/{id}/failed", "/api/runs/" + big.String() + "/failed"},
		{"overview, 10k runs", "/"},
		{"overview, filter status=failed", "/?status=failed"},
		{"overview, filter automation", "/?automation=" + url.QueryEscape(auto)},
		{"overview, page 50 (keyset)", ""},
		{"GET /api/runs", "/api/runs"},
	}
	// The keyset cursor of a deep page, found by walking the API.
	deep := "/?after="
	after := ""
	for range 50 {
		page, err := x.ListRuns(ctx, execution.RunFilter{After: after})
		if err != nil {
			return err
		}
		after = page.Next
	}
	targets[9].path = deep + url.QueryEscape(after)

	var load1 string
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load1 = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	var pgVersion string
	_ = d.SQL().QueryRowContext(ctx, `SELECT current_setting('server_version')`).Scan(&pgVersion)
	fmt.Fprintf(out, "dashboard server time: %d-item run, %d runs over %d automations; median and max of %d requests after a warm-up\n",
		cfg.items, cfg.runs+1, cfg.automations, cfg.repeat)
	fmt.Fprintf(out, "%s, %s, PostgreSQL %s, %d CPUs, load average at start %s\n\n", time.Now().UTC().Format(time.RFC3339), runtime.Version(), pgVersion, runtime.NumCPU(), load1)
	fmt.Fprintln(out, "| request | median ms | max ms | target | ok? |")
	fmt.Fprintln(out, "| --- | --- | --- | --- | --- |")
	for _, tg := range targets {
		times := make([]float64, 0, cfg.repeat)
		for i := 0; i <= cfg.repeat; i++ {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1"+tg.path, nil)
			rec := httptest.NewRecorder()
			t0 := time.Now()
			h.ServeHTTP(rec, req)
			el := time.Since(t0)
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", tg.path, rec.Code, rec.Body.String())
			}
			if i > 0 { // the first is the warm-up
				times = append(times, float64(el.Microseconds())/1000)
			}
		}
		sort.Float64s(times)
		med, mx := times[len(times)/2], times[len(times)-1]
		target, ok := "—", "—"
		if strings.HasPrefix(tg.what, "run page, ") || strings.HasPrefix(tg.what, "overview, 10k") {
			target, ok = "< 200 ms", "yes"
			if med >= 200 {
				ok = "NO"
			}
		}
		fmt.Fprintf(out, "| %s | %.1f | %.1f | %s | %s |\n", tg.what, med, mx, target, ok)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(out, "\nload average at end %s\n", strings.Join(strings.Fields(string(b))[:3], " "))
	}
	return nil
}

// load writes the big run and the overview's runs, set-based, and returns
// the big run's id.
func load(ctx context.Context, d *sql.DB, cfg config, logger *log.Logger) (uuid.UUID, error) {
	conn, err := d.Conn(ctx)
	if err != nil {
		return uuid.Nil, err
	}
	defer conn.Close()
	exec := func(what, q string, args ...any) error {
		t0 := time.Now()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		logger.Printf("   %s: %s", what, time.Since(t0).Round(time.Millisecond))
		return nil
	}
	if err := exec("replica mode", `SET session_replication_role = replica`); err != nil {
		return uuid.Nil, err
	}
	// Automations, one batch each.
	if err := exec("automations", `INSERT INTO automation (name, description)
		SELECT format('automation-%s', lpad(g::text, 4, '0')), 'benchmark automation' FROM generate_series(1, $1) g`, cfg.automations); err != nil {
		return uuid.Nil, err
	}
	if err := exec("batches", `INSERT INTO batch (automation_id, name) SELECT id, 'main' FROM automation`); err != nil {
		return uuid.Nil, err
	}
	// The overview's runs: finished, a few failed, the last ones running;
	// one batch execution each, status counts as the triggers keep them.
	if err := exec("runs", `
		WITH r AS (
			INSERT INTO run (automation_id, status, correlation_id, started_at, finished_at, created_at)
			SELECT a.id,
				CASE WHEN g % 50 = 0 THEN 'failed' WHEN g > $1 - 20 THEN 'running' ELSE 'succeeded' END,
				'corr-' || g,
				now() - (($1 - g) * interval '1 minute') - interval '30 seconds',
				CASE WHEN g > $1 - 20 THEN NULL ELSE now() - (($1 - g) * interval '1 minute') END,
				now() - (($1 - g) * interval '1 minute') - interval '31 seconds'
			FROM generate_series(1, $1) g
			JOIN (SELECT id, row_number() OVER (ORDER BY name) - 1 AS k FROM automation) a ON a.k = g % $2
			RETURNING id, automation_id, status)
		INSERT INTO batch_execution (run_id, batch_id, status)
		SELECT r.id, b.id, r.status FROM r JOIN batch b ON b.automation_id = r.automation_id`, cfg.runs, cfg.automations); err != nil {
		return uuid.Nil, err
	}
	if err := exec("status counts of the runs", `
		INSERT INTO status_count (run_id, batch_execution_id, status, delta)
		SELECT be.run_id, be.id, s.status, s.n FROM batch_execution be
		CROSS JOIN LATERAL (VALUES
			('succeeded', CASE WHEN be.status = 'running' THEN 40 ELSE 95 END),
			('failed', CASE WHEN be.status = 'failed' THEN 5 ELSE 0 END),
			('queued', CASE WHEN be.status = 'running' THEN 60 ELSE 0 END)) AS s(status, n)
		WHERE s.n > 0`); err != nil {
		return uuid.Nil, err
	}

	// The big run: an hour old, 95% finished (1 in 500 failed or timed
	// out), the rest queued or running.
	var big, be, batch uuid.UUID
	if err := conn.QueryRowContext(ctx, `SELECT b.id FROM batch b JOIN automation a ON a.id = b.automation_id ORDER BY a.name LIMIT 1`).Scan(&batch); err != nil {
		return uuid.Nil, err
	}
	if err := conn.QueryRowContext(ctx, `INSERT INTO run (automation_id, status, correlation_id, started_at, created_at)
		SELECT automation_id, 'running', 'big-run', now() - interval '1 hour', now() - interval '61 minutes' FROM batch WHERE id = $1 RETURNING id`, batch).Scan(&big); err != nil {
		return uuid.Nil, err
	}
	if err := conn.QueryRowContext(ctx, `INSERT INTO batch_execution (run_id, batch_id, status, started_at) VALUES ($1, $2, 'running', now() - interval '1 hour') RETURNING id`, big, batch).Scan(&be); err != nil {
		return uuid.Nil, err
	}
	if err := exec("1M items", `INSERT INTO item (batch_id, sequence_number, payload)
		SELECT $1, g, jsonb_build_object('invoice', 'INV-' || g, 'amount', g % 1000) FROM generate_series(0, $2 - 1) g`, batch, cfg.items); err != nil {
		return uuid.Nil, err
	}
	if err := exec("1M item executions", `
		INSERT INTO item_execution (automation_id, run_id, batch_execution_id, item_id, status, started_at, finished_at, attempt_count, max_attempts, error_message, created_by, updated_by)
		SELECT (SELECT automation_id FROM run WHERE id = $1), $1, $2, i.id, x.status,
			CASE WHEN x.status <> 'queued' THEN x.t END,
			CASE WHEN x.status NOT IN ('queued', 'running') THEN x.t + (50 + (i.sequence_number % 97) * 7) * interval '1 millisecond' END,
			CASE WHEN x.status = 'queued' THEN 0 ELSE 1 END, 3,
			CASE WHEN x.status IN ('failed', 'timed_out') THEN 'invoice total does not match its lines' END,
			'bench', 'worker-' || (i.sequence_number % 8)
		FROM item i
		CROSS JOIN LATERAL (SELECT
			CASE WHEN i.sequence_number >= $3 * 0.95 THEN (CASE WHEN i.sequence_number % 100 = 0 THEN 'running' ELSE 'queued' END)
				WHEN i.sequence_number % 1000 = 7 THEN 'failed'
				WHEN i.sequence_number % 1000 = 507 THEN 'timed_out'
				ELSE 'succeeded' END AS status,
			now() - interval '1 hour' + (i.sequence_number::float8 / $3) * interval '57 minutes' AS t) x
		WHERE i.batch_id = $4`, big, be, cfg.items, batch); err != nil {
		return uuid.Nil, err
	}
	if err := exec("history", `
		INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
		SELECT ie.id, h.prev, h.next, h.at, h.at, h.who
		FROM item_execution ie
		CROSS JOIN LATERAL (VALUES
			(NULL, 'queued', ie.created_at - interval '1 hour', 'bench'),
			('queued', 'running', ie.started_at, ie.updated_by),
			('running', ie.status, ie.finished_at, ie.updated_by)) AS h(prev, next, at, who)
		WHERE ie.run_id = $1 AND h.at IS NOT NULL AND (h.prev IS NULL OR ie.status <> 'queued')
			AND NOT (h.prev = 'running' AND ie.status = 'running')`, big); err != nil {
		return uuid.Nil, err
	}
	if err := exec("status counts of the big run", `INSERT INTO status_count (run_id, batch_execution_id, status, delta)
		SELECT run_id, batch_execution_id, status, count(*) FROM item_execution WHERE run_id = $1 GROUP BY 1, 2, 3`, big); err != nil {
		return uuid.Nil, err
	}
	return big, nil
}
