package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/dbtest"
)

// The catalog tests read pg_catalog on a database built by the migration
// files and assert the model of DESIGN.md: cascades, indexes, types, defaults.

var tables = []string{"automation", "batch", "item", "run", "batch_execution", "item_execution",
	"item_state_history", "engine", "orchestration_instance", "run_orchestration"}

func TestCatalogCascades(t *testing.T) {
	t.Parallel()
	d := openSQL(t, dbtest.NewURL(t))
	rows, err := d.QueryContext(context.Background(), `
		SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, c.confdeltype
		FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
		AND c.conparentid = 0 AND NOT c.conrelid::regclass::text ~ '_p[0-9]{6}$'`) // not a partitioned layout's clones
	require.NoError(t, err)
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var child, col, parent, del string
		require.NoError(t, rows.Scan(&child, &col, &parent, &del))
		got[child+"."+col] = parent + " " + del
	}
	require.NoError(t, rows.Err())
	want := map[string]string{
		"batch.automation_id":                         "automation c",
		"run.automation_id":                           "automation c",
		"item.batch_id":                               "batch c",
		"batch_execution.batch_id":                    "batch c",
		"batch_execution.run_id":                      "run c",
		"item_execution.run_id":                       "run c",
		"item_execution.batch_execution_id":           "batch_execution c",
		"item_execution.item_id":                      "item c",
		"item_state_history.item_execution_id":        "item_execution c",
		"orchestration_instance.engine_id":            "engine c",
		"run_orchestration.run_id":                    "run c",
		"run_orchestration.orchestration_instance_id": "orchestration_instance c",
		"status_count.batch_execution_id":             "batch_execution c", // execution counters
	}
	require.Equal(t, want, got, "every parent->child foreign key cascades on delete ('c')")
}

type indexDef struct {
	table, name, cols, pred string
	unique                  bool
}

func (i indexDef) String() string {
	u := ""
	if i.unique {
		u = "UNIQUE "
	}
	s := u + i.table + "(" + i.cols + ")"
	if i.pred != "" {
		s += " WHERE " + i.pred
	}
	return s
}

func readIndexes(t *testing.T, url string) []indexDef {
	t.Helper()
	d := openSQL(t, url)
	rows, err := d.QueryContext(context.Background(), `
		SELECT t.relname, i.relname, x.indisunique, coalesce(pg_get_expr(x.indpred, x.indrelid), ''),
			(SELECT string_agg(a.attname, ', ' ORDER BY k.ord)
			 FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
			 JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum)
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		WHERE t.relnamespace = 'public'::regnamespace AND NOT x.indisprimary`)
	require.NoError(t, err)
	defer rows.Close()
	var out []indexDef
	for rows.Next() {
		var ix indexDef
		require.NoError(t, rows.Scan(&ix.table, &ix.name, &ix.unique, &ix.pred, &ix.cols))
		out = append(out, ix)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestCatalogIndexes(t *testing.T) {
	t.Parallel()
	ixs := readIndexes(t, dbtest.NewURL(t))
	have := map[string]bool{}
	for _, ix := range ixs {
		have[ix.String()] = true
	}
	want := []string{
		"automation(name)",
		"UNIQUE automation(name) WHERE (is_active = true)",
		"UNIQUE batch(automation_id, name)",
		"UNIQUE item(batch_id, sequence_number)",
		"run(automation_id)",
		"run(correlation_id)",
		"run(started_at, status)",
		"run(status)",
		"UNIQUE batch_execution(run_id, batch_id)",
		"batch_execution(batch_id)",
		"batch_execution(status)",
		"UNIQUE item_execution(run_id, item_id)",
		"item_execution(batch_execution_id)",
		"item_execution(item_id)",
		"item_execution(status) WHERE ((status)::text = ANY ('{pending,failed,cancelled,timed_out,skipped}'::text[]))",
		"item_execution(priority, not_before, id) WHERE ((status)::text = ANY ('{queued,retrying,scheduled}'::text[]))",
		"item_execution(automation_id, priority, not_before, id) WHERE ((status)::text = ANY ('{queued,retrying,scheduled}'::text[]))",
		"item_state_history(item_execution_id, changed_at)",
		"UNIQUE engine(name)",
		"UNIQUE orchestration_instance(engine_id, external_id)",
		"orchestration_instance(status, started_at)",
		"orchestration_instance(status)",
		"UNIQUE run_orchestration(run_id, orchestration_instance_id)",
		"run_orchestration(orchestration_instance_id)",
	}
	for _, tbl := range tables {
		if tbl != "item_state_history" {
			// Partial on the rare inactive rows (README "Keys and indexes").
			want = append(want, tbl+"(is_active) WHERE (NOT is_active)")
		}
	}
	if dbtest.Partitioned() {
		// The documented deviation: a unique index must include the
		// partition key (id), so (run_id, item_id) is a plain index.
		for i, w := range want {
			if w == "UNIQUE item_execution(run_id, item_id)" {
				want[i] = "item_execution(run_id, item_id)"
			}
		}
		require.False(t, have["UNIQUE item_execution(run_id, item_id)"])
	}
	for _, w := range want {
		require.True(t, have[w], "missing index %s", w)
	}
	for _, ix := range ixs {
		if strings.HasPrefix(ix.cols, "is_active") {
			require.Equal(t, "(NOT is_active)", ix.pred, "%s: an index over all the (active) rows serves no query", ix)
		}
		if ix.pred != "" && ix.table == "automation" && ix.cols == "name" {
			require.Equal(t, "ix_automation_name_active", ix.name)
		}
	}
}

// item_execution's status index is partial (StatusIndexPredicate): every
// status but succeeded must still be found through an index, the claim and
// lease indexes holding the ones it leaves out. Succeeded is the bulk of a
// finished table, which no plan reads through an index.
func TestCatalogItemExecutionStatusesReachAnIndex(t *testing.T) {
	t.Parallel()
	d := openSQL(t, dbtest.NewURL(t))
	d.SetMaxOpenConns(1) // one session: the SET holds for the EXPLAINs
	_, err := d.Exec(`SET enable_seqscan = off`)
	require.NoError(t, err)
	for _, st := range runledger.AllStatuses {
		if st == runledger.StatusSucceeded {
			continue
		}
		plan := explain(t, d, `EXPLAIN SELECT id FROM item_execution WHERE status = '`+string(st)+`'`)
		require.NotContains(t, plan, "Seq Scan", "status %s reaches no index:\n%s", st, plan)
		require.Contains(t, plan, "Index", "status %s:\n%s", st, plan)
	}
}

func TestCatalogForeignKeysLeadAnIndex(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	ixs := readIndexes(t, url)
	d := openSQL(t, url)
	rows, err := d.Query(`
		SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
		AND c.conparentid = 0 AND NOT c.conrelid::regclass::text ~ '_p[0-9]{6}$'`) // not a partitioned layout's clones
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var tbl, col string
		require.NoError(t, rows.Scan(&tbl, &col))
		led := false
		for _, ix := range ixs {
			if ix.table == tbl && ix.pred == "" && strings.Split(ix.cols, ", ")[0] == col {
				led = true
			}
		}
		require.True(t, led, "foreign key %s.%s leads no index", tbl, col)
	}
	require.NoError(t, rows.Err())
}

func TestCatalogColumns(t *testing.T) {
	t.Parallel()
	d := openSQL(t, dbtest.NewURL(t))
	rows, err := d.Query(`
		SELECT table_name, column_name,
			CASE WHEN character_maximum_length IS NOT NULL THEN data_type || '(' || character_maximum_length || ')' ELSE data_type END,
			is_nullable, coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'atlas_schema_revisions'`)
	require.NoError(t, err)
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var tbl, col, typ, null, def string
		require.NoError(t, rows.Scan(&tbl, &col, &typ, &null, &def))
		n := "not null"
		if null == "YES" {
			n = "null"
		}
		got[tbl+"."+col] = strings.TrimSpace(fmt.Sprintf("%s %s %s", typ, n, def))
	}
	require.NoError(t, rows.Err())

	const (
		ts      = "timestamp with time zone not null CURRENT_TIMESTAMP"
		by      = "character varying(100) null"
		tsNull  = "timestamp with time zone null"
		status  = "character varying not null 'pending'::character varying"
		uuidKey = "uuid not null gen_random_uuid()"
		v7Key   = "uuid not null runledger_uuidv7()" // time-ordered: the hot tables
	)
	want := map[string]string{
		"automation.name":                             "character varying(200) not null",
		"automation.description":                      "text null",
		"automation.batch_schema":                     "jsonb null",
		"automation.item_schema":                      "jsonb null",
		"batch.automation_id":                         "uuid not null",
		"batch.name":                                  "character varying(200) not null",
		"batch.payload":                               "jsonb null",
		"item.batch_id":                               "uuid not null",
		"item.sequence_number":                        "integer not null",
		"item.payload":                                "jsonb null",
		"run.automation_id":                           "uuid not null",
		"run.correlation_id":                          "character varying(100) null",
		"run.cancellation_reason":                     "text null",
		"run.error_summary":                           "text null",
		"batch_execution.run_id":                      "uuid not null",
		"batch_execution.batch_id":                    "uuid not null",
		"item_execution.run_id":                       "uuid not null",
		"item_execution.batch_execution_id":           "uuid not null",
		"item_execution.item_id":                      "uuid not null",
		"item_execution.automation_id":                "uuid not null", // run.automation_id, denormalised: no FK of its own
		"item_execution.result_payload":               "jsonb null",
		"item_execution.error_message":                "text null",
		"item_execution.retryable":                    "boolean not null true",
		"item_execution.attempt_count":                "integer not null 0",
		"item_execution.max_attempts":                 "integer null",
		"item_state_history.item_execution_id":        "uuid not null",
		"item_state_history.previous_status":          "character varying null",
		"item_state_history.new_status":               "character varying not null",
		"item_state_history.changed_at":               ts,
		"item_state_history.created_at":               ts,
		"item_state_history.created_by":               by,
		"engine.name":                                 "character varying(100) not null",
		"engine.type":                                 "character varying(50) not null",
		"orchestration_instance.engine_id":            "uuid not null",
		"orchestration_instance.external_id":          "character varying(200) not null",
		"orchestration_instance.duration_seconds":     "integer null",
		"orchestration_instance.instance_metadata":    "jsonb null",
		"run_orchestration.run_id":                    "uuid not null",
		"run_orchestration.orchestration_instance_id": "uuid not null",
		"run_orchestration.attached_at":               ts,
	}
	for _, tbl := range tables {
		want[tbl+".id"] = uuidKey
		switch tbl {
		case "item", "item_execution", "item_state_history":
			want[tbl+".id"] = v7Key
		}
		if tbl == "item_state_history" {
			continue
		}
		want[tbl+".created_at"] = ts
		want[tbl+".updated_at"] = ts
		want[tbl+".created_by"] = by
		want[tbl+".updated_by"] = by
		want[tbl+".version"] = "integer not null 1"
		want[tbl+".is_active"] = "boolean not null true"
	}
	for _, tbl := range []string{"run", "batch_execution", "item_execution", "orchestration_instance"} {
		want[tbl+".status"] = status
		want[tbl+".started_at"] = tsNull
		want[tbl+".finished_at"] = tsNull
	}
	for col, w := range want {
		require.Equal(t, w, got[col], col)
	}
	_, hasVersion := got["item_state_history.version"]
	require.False(t, hasVersion, "history is immutable: no version column")
	_, hasActive := got["item_state_history.is_active"]
	require.False(t, hasActive, "history is never soft-deleted")
}
