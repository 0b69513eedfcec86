package execution

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
)

// TestClaimForPlan: with another automation holding a large backlog, the
// scoped claim reads its own automation's rows through
// ix_item_execution_claim_automation, with the generic plan of the prepared
// statement and with a custom plan alike, and never walks the backlog.
func TestClaimForPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	onePartition(t, d)
	// A has 10 claimable items, B 10,000 that come first in claim order.
	_, err := d.SQL().ExecContext(ctx, `
		WITH a AS (INSERT INTO automation (name) VALUES ('plan-a'), ('plan-b') RETURNING id, name),
		b AS (INSERT INTO batch (automation_id, name) SELECT id, 'b' FROM a RETURNING id, automation_id),
		i AS (INSERT INTO item (batch_id, sequence_number)
			SELECT b.id, s FROM b JOIN a ON a.id = b.automation_id,
				generate_series(1, CASE a.name WHEN 'plan-a' THEN 10 ELSE 10000 END) s
			RETURNING id, batch_id),
		r AS (INSERT INTO run (automation_id, status) SELECT id, 'queued' FROM a RETURNING id, automation_id),
		be AS (INSERT INTO batch_execution (run_id, batch_id, status) SELECT r.id, b.id, 'queued' FROM r JOIN b USING (automation_id) RETURNING id, run_id, batch_id)
		INSERT INTO item_execution (run_id, batch_execution_id, item_id, status, priority)
		SELECT be.run_id, be.id, i.id, 'queued', CASE WHEN a.name = 'plan-a' THEN 5 ELSE 0 END
		FROM be JOIN i USING (batch_id) JOIN r ON r.id = be.run_id JOIN a ON a.id = r.automation_id`)
	require.NoError(t, err)
	_, err = d.SQL().ExecContext(ctx, `ANALYZE`)
	require.NoError(t, err)

	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			tx, err := d.SQL().BeginTx(ctx, nil)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			_, err = tx.ExecContext(ctx, `SET LOCAL plan_cache_mode = `+mode)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, `PREPARE `+mode+`(text, int, int8, text[], uuid[]) AS `+claimForSQL)
			require.NoError(t, err)
			rows, err := tx.QueryContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE `+mode+`('w', 5, 60000, '{plan-a}', '{}')`)
			require.NoError(t, err)
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			require.NoError(t, rows.Err())
			text := parentNames(t, d, strings.Join(plan, "\n"))
			t.Log(text)
			require.Contains(t, text, "using ix_item_execution_claim_automation on item_execution", text)
			require.NotContains(t, text, "Seq Scan on item_execution", text)
			require.NotContains(t, text, "ix_item_execution_claim on", text)
			require.NotContains(t, text, "Sort Method: external", text)
			var claimed int
			require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM item_execution WHERE status = 'running'`).Scan(&claimed))
			require.Equal(t, 5, claimed)
			_, err = tx.ExecContext(ctx, `DEALLOCATE `+mode)
			require.NoError(t, err)
		})
	}
}
