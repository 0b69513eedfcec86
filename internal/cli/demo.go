package cli

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgurl"
	"github.com/runledger/runledger/migrate"
)

// DemoDatabase is the database the demo uses when DATABASE_URL is not set.
const DemoDatabase = "runledger_demo"

func demo(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "demo")
	url := fs.String("url", "", "database URL (default $DATABASE_URL, else a local database "+DemoDatabase+")")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	u := *url
	if u == "" {
		u = env.Getenv("DATABASE_URL")
	}
	if u == "" {
		var err error
		if u, err = pgurl.WithDatabase(pgurl.DefaultServer, DemoDatabase); err != nil {
			return err
		}
		if err := ensureDatabase(ctx, env, pgurl.DefaultServer, DemoDatabase); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "database %s\n", pgurl.Describe(u))
	if err := applyTo(ctx, env, u, migrate.ApplyOptions{}); err != nil {
		return err
	}
	d, err := db.Open(ctx, db.Config{URL: u})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx = runledger.WithActor(ctx, "demo")
	runID, err := demoScenario(ctx, env, d)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout)
	return printRunTree(ctx, env.Stdout, d.Client, execution.New(d, execution.Options{}), runID)
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

// demoScenario records one run: an automation with two batches of items, a
// run over them whose items succeed, retry and fail, linked to a Jenkins build.
func demoScenario(ctx context.Context, env Env, d *db.DB) (uuid.UUID, error) {
	suffix := uuid.NewString()[:8]
	var runID uuid.UUID
	err := d.WithTx(ctx, func(tx *ent.Tx) error {
		eng, err := tx.Engine.Create().SetName("jenkins-" + suffix).SetType("jenkins").Save(ctx)
		if err != nil {
			return fmt.Errorf("create engine: %w", err)
		}
		auto, err := tx.Automation.Create().
			SetName("invoice-processing-" + suffix).
			SetDescription("Reads invoices and books them").
			SetBatchSchema(map[string]any{"type": "object", "required": []any{"source"}, "properties": map[string]any{"source": map[string]any{"type": "string"}}}).
			SetItemSchema(map[string]any{"type": "object", "required": []any{"invoice"}, "properties": map[string]any{"invoice": map[string]any{"type": "string"}, "amount": map[string]any{"type": "number"}}}).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("create automation: %w", err)
		}
		run, err := tx.Run.Create().SetAutomation(auto).SetCorrelationID("demo-" + suffix).
			SetStatus(runledger.StatusRunning).SetStartedAt(time.Now()).Save(ctx)
		if err != nil {
			return fmt.Errorf("create run: %w", err)
		}
		runID = run.ID
		batches := []struct {
			name  string
			items []string
		}{
			{"north", []string{"INV-1001", "INV-1002", "INV-1003"}},
			{"south", []string{"INV-2001", "INV-2002"}},
		}
		var execs []*ent.ItemExecution
		for _, b := range batches {
			batch, err := tx.Batch.Create().SetAutomation(auto).SetName(b.name).
				SetPayload(map[string]any{"source": "sftp://" + b.name}).Save(ctx)
			if err != nil {
				return fmt.Errorf("create batch: %w", err)
			}
			items := make([]*ent.ItemCreate, len(b.items))
			for i, inv := range b.items {
				items[i] = tx.Item.Create().SetBatch(batch).SetSequenceNumber(int32(i)).
					SetPayload(map[string]any{"invoice": inv, "amount": 100 * (i + 1)})
			}
			created, err := tx.Item.CreateBulk(items...).Save(ctx)
			if err != nil {
				return fmt.Errorf("create items: %w", err)
			}
			be, err := tx.BatchExecution.Create().SetRun(run).SetBatch(batch).
				SetStatus(runledger.StatusRunning).SetStartedAt(time.Now()).Save(ctx)
			if err != nil {
				return fmt.Errorf("create batch execution: %w", err)
			}
			ies := make([]*ent.ItemExecutionCreate, len(created))
			for i, it := range created {
				ies[i] = tx.ItemExecution.Create().SetRun(run).SetBatchExecution(be).SetItem(it).
					SetStatus(runledger.StatusQueued).SetMaxAttempts(2)
			}
			got, err := tx.ItemExecution.CreateBulk(ies...).Save(ctx)
			if err != nil {
				return fmt.Errorf("create item executions: %w", err)
			}
			execs = append(execs, got...)
		}
		// Walk the items: most succeed, INV-1002 fails once and succeeds on
		// retry, INV-2002 fails for good.
		for i, ie := range execs {
			steps := []runledger.ExecutionStatus{runledger.StatusRunning, runledger.StatusSucceeded}
			switch i {
			case 1:
				steps = []runledger.ExecutionStatus{runledger.StatusRunning, runledger.StatusRetrying, runledger.StatusRunning, runledger.StatusSucceeded}
			case len(execs) - 1:
				steps = []runledger.ExecutionStatus{runledger.StatusRunning, runledger.StatusFailed}
			}
			for _, to := range steps {
				if ie, err = advance(ctx, tx, ie, to); err != nil {
					return err
				}
			}
		}
		// Roll up: each batch execution and the run finish with their items.
		bes, err := tx.Run.QueryBatchExecutions(run).WithItemExecutions().All(ctx)
		if err != nil {
			return err
		}
		failed := 0
		for _, be := range bes {
			status := runledger.StatusSucceeded
			for _, ie := range be.Edges.ItemExecutions {
				if ie.Status == runledger.StatusFailed {
					status = runledger.StatusFailed
					failed++
				}
			}
			if _, err := tx.BatchExecution.UpdateOne(be).SetStatus(status).SetFinishedAt(time.Now()).Save(ctx); err != nil {
				return fmt.Errorf("finish batch execution: %w", err)
			}
		}
		inst, err := tx.OrchestrationInstance.Create().SetEngine(eng).SetExternalID("build-42").
			SetStatus(runledger.StatusSucceeded).SetStartedAt(run.StartedAt.Add(-time.Second)).SetFinishedAt(time.Now()).
			SetDurationSeconds(1).SetInstanceMetadata(map[string]any{"result": "SUCCESS", "url": "https://jenkins.example/job/invoices/42"}).Save(ctx)
		if err != nil {
			return fmt.Errorf("create orchestration instance: %w", err)
		}
		if _, err := tx.RunOrchestration.Create().SetRun(run).SetOrchestrationInstance(inst).Save(ctx); err != nil {
			return fmt.Errorf("link orchestration: %w", err)
		}
		_, err = tx.Run.UpdateOne(run).SetStatus(runledger.StatusFailed).SetFinishedAt(time.Now()).
			SetErrorSummary(fmt.Sprintf("%d item(s) failed", failed)).Save(ctx)
		return err
	})
	if err != nil {
		return uuid.Nil, err
	}
	fmt.Fprintf(env.Stdout, "recorded run %s\n", runID)
	return runID, nil
}

// advance moves an item execution to status to, as a worker would report it.
func advance(ctx context.Context, tx *ent.Tx, ie *ent.ItemExecution, to runledger.ExecutionStatus) (*ent.ItemExecution, error) {
	u := tx.ItemExecution.UpdateOne(ie).SetStatus(to)
	now := time.Now()
	switch {
	case to == runledger.StatusRunning:
		u.AddAttemptCount(1)
		if ie.StartedAt == nil {
			u.SetStartedAt(now)
		}
	case to == runledger.StatusRetrying:
		u.SetErrorMessage("timeout talking to the ledger service")
	case to == runledger.StatusFailed:
		u.SetErrorMessage("invoice total does not match its lines").SetFinishedAt(now)
	case to.Terminal():
		u.ClearErrorMessage().SetFinishedAt(now).SetResultPayload(map[string]any{"booked": true})
	}
	out, err := u.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("item execution %s -> %s: %w", ie.Status, to, err)
	}
	return out, nil
}
