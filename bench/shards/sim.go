package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/bench/internal/procstat"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/migrate"
)

// serverSettings are every primary's postgresql.conf additions: a bench
// server, tuned for throughput rather than durability.
var serverSettings = map[string]string{
	"fsync":              "off",
	"full_page_writes":   "off",
	"synchronous_commit": "off",
	"shared_buffers":     "256MB",
	"max_connections":    "50",
}

func settingsLine() string {
	keys := make([]string, 0, len(serverSettings))
	for k := range serverSettings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + serverSettings[k]
	}
	return strings.Join(parts, " ")
}

// cluster is one primary: its server, pool, client, runner and the
// automations routed to it.
type cluster struct {
	name       string
	server     *pgserver.Server
	d          *db.DB
	x          *execution.Client
	runner     *execution.Runner
	postmaster int
	autos      []string
	runs       map[string]uuid.UUID // automation name -> its run
}

func (c *cluster) items(perAutomation int) int { return len(c.autos) * perAutomation }

// callKey is one handler call: an item execution's attempt.
type callKey struct {
	id      uuid.UUID
	attempt int32
}

// callLog records every handler call of every primary's runner.
type callLog struct {
	mu    sync.Mutex
	calls map[callKey]int
	names map[uuid.UUID]string // item execution -> automation name it was claimed under
}

func (l *callLog) record(it execution.Claimed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[callKey{it.ID, it.Attempt}]++
	l.names[it.ID] = it.AutomationName
}

// sim is the simulation: the primaries and the one Workers and
// RunnerOptions every runner is made from.
type sim struct {
	cfg      *config
	log      *log.Logger
	clusters []*cluster
	names    []string // the primaries' names, the routing's input
	version  string
	calls    *callLog
	ws       *execution.Workers
	opts     execution.RunnerOptions
}

// errFirstAttempt fails the first attempt of every cfg.failEvery-th item.
var errFirstAttempt = errors.New("shards: first attempt fails")

func newSim(ctx context.Context, cfg *config, logger *log.Logger) (s *sim, err error) {
	s = &sim{cfg: cfg, log: logger, calls: &callLog{calls: map[callKey]int{}, names: map[uuid.UUID]string{}}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	t0 := time.Now()
	for i := range cfg.clusters {
		c := &cluster{name: fmt.Sprintf("primary-%d", i), runs: map[string]uuid.UUID{}}
		s.clusters = append(s.clusters, c)
		s.names = append(s.names, c.name)
		if err := s.startCluster(ctx, c); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// Route the automations and create each, with one batch of cfg.items
	// items and a started run, on its primary only.
	for a := range cfg.automations {
		name := fmt.Sprintf("automation-%02d", a)
		c := s.clusters[route(name, s.names)]
		c.autos = append(c.autos, name)
		if err := s.createAutomation(ctx, c, name); err != nil {
			return nil, fmt.Errorf("%s on %s: %w", name, c.name, err)
		}
	}
	for _, c := range s.clusters {
		logger.Printf("   %s (port %d): %d automations %v", c.name, c.server.Port(), len(c.autos), c.autos)
	}
	// One configuration for every runner: the same Workers (a handler per
	// automation name, whichever primary holds it) and the same options.
	s.ws = execution.NewWorkers()
	for a := range cfg.automations {
		s.ws.Handle(fmt.Sprintf("automation-%02d", a), execution.HandlerFunc(s.handle), execution.HandlerOptions{Concurrency: cfg.concurrency})
	}
	s.opts = execution.RunnerOptions{Name: "shards-runner", PollInterval: cfg.poll}
	logger.Printf("   %d primaries migrated, %d automations of %d items started (%s)", cfg.clusters, cfg.automations, cfg.items, time.Since(t0).Round(time.Millisecond))
	return s, nil
}

func (s *sim) startCluster(ctx context.Context, c *cluster) error {
	var err error
	c.server, err = pgserver.Start(ctx, pgserver.Options{Settings: serverSettings, Logf: s.log.Printf})
	if err != nil {
		return err
	}
	if c.postmaster, err = procstat.PostmasterPID(c.server.DataDir()); err != nil {
		return err
	}
	admin, err := sql.Open("postgres", c.server.URL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE shards`); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if s.version == "" {
		if err := admin.QueryRowContext(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&s.version); err != nil {
			return err
		}
	}
	target, err := sql.Open("postgres", c.server.URL("shards"))
	if err != nil {
		return err
	}
	defer target.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, target, dir, migrate.ApplyOptions{}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	c.d, err = db.Open(ctx, db.Config{URL: c.server.URL("shards"), PoolSize: 10, MaxOverflow: 10})
	if err != nil {
		return err
	}
	// Failed attempts come back after about a millisecond.
	c.x = execution.New(c.d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	return nil
}

func (s *sim) createAutomation(ctx context.Context, c *cluster, name string) error {
	a, err := c.d.Automation.Create().SetName(name).Save(ctx)
	if err != nil {
		return err
	}
	b, err := c.d.Batch.Create().SetAutomationID(a.ID).SetName("batch-0").Save(ctx)
	if err != nil {
		return err
	}
	items := make([]execution.NewItem, s.cfg.items)
	for i := range items {
		items[i] = execution.NewItem{SequenceNumber: int32(i), Payload: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}
	}
	if _, err := c.x.AddItems(ctx, b.ID, execution.Items(items)); err != nil {
		return err
	}
	r, err := c.x.StartRun(ctx, a.ID, execution.StartOptions{})
	if err != nil {
		return err
	}
	c.runs[name] = r.ID
	return nil
}

// handle is every automation's handler: it records the call and fails the
// first attempt of every cfg.failEvery-th item.
func (s *sim) handle(_ context.Context, it execution.Claimed) (json.RawMessage, error) {
	s.calls.record(it)
	if s.cfg.failEvery > 0 && int(it.SequenceNumber)%s.cfg.failEvery == 0 && it.Attempt == 1 {
		return nil, errFirstAttempt
	}
	return json.RawMessage(`{"ok": true}`), nil
}

func (s *sim) close() {
	for _, c := range s.clusters {
		if c.runner != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = c.runner.Stop(ctx)
			cancel()
		}
		if c.x != nil {
			_ = c.x.Close()
		}
		if c.d != nil {
			_ = c.d.Close()
		}
		if c.server != nil {
			if err := c.server.Close(); err != nil {
				s.log.Printf("close %s: %v", c.name, err)
			}
		}
	}
}

// result is what the burn-down measured, per primary and in total.
type result struct {
	took      []time.Duration // from the runners' start to the primary's last success
	total     time.Duration   // to the last success of all
	stats     []execution.RunnerStats
	serverCPU []time.Duration
	clientCPU time.Duration // this process: every runner and handler
}

// burnDown starts one runner per primary, all at once, and waits until
// each has reported all of its primary's items succeeded.
func (s *sim) burnDown(ctx context.Context) (*result, error) {
	res := &result{took: make([]time.Duration, len(s.clusters)), stats: make([]execution.RunnerStats, len(s.clusters)), serverCPU: make([]time.Duration, len(s.clusters))}
	for _, c := range s.clusters {
		r, err := c.x.NewRunner(s.ws, s.opts)
		if err != nil {
			return nil, err
		}
		c.runner = r
	}
	before := make([]time.Duration, len(s.clusters))
	for i, c := range s.clusters {
		t, err := procstat.ServerCPU(c.postmaster)
		if err != nil {
			return nil, err
		}
		before[i] = t
	}
	clientBefore, err := procstat.SelfCPU()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	t0 := time.Now()
	for _, c := range s.clusters {
		if err := c.runner.Start(ctx); err != nil {
			return nil, fmt.Errorf("%s: start runner: %w", c.name, err)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for left := len(s.clusters); left > 0; {
		for i, c := range s.clusters {
			if res.took[i] > 0 {
				continue
			}
			st := c.runner.Stats()
			if st.Failed+st.Cancelled > 0 {
				return nil, fmt.Errorf("%s: runner stats %+v", c.name, st)
			}
			if st.Succeeded >= int64(c.items(s.cfg.items)) {
				res.took[i] = time.Since(t0)
				left--
				s.log.Printf("   %s: %d items done in %s", c.name, st.Succeeded, res.took[i].Round(time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("after %s: %w", time.Since(t0).Round(time.Second), ctx.Err())
		case <-tick.C:
		}
	}
	res.total = time.Since(t0)
	clientAfter, err := procstat.SelfCPU()
	if err != nil {
		return nil, err
	}
	res.clientCPU = clientAfter - clientBefore
	for i, c := range s.clusters {
		t, err := procstat.ServerCPU(c.postmaster)
		if err != nil {
			return nil, err
		}
		res.serverCPU[i] = t - before[i]
	}
	var errs []error
	for i, c := range s.clusters {
		res.stats[i] = c.runner.Stats() // before Stop: Leader is cleared by it
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		errs = append(errs, c.runner.Stop(sctx))
		cancel()
		c.runner = nil
	}
	return res, errors.Join(errs...)
}
