package execution

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/internal/layout"
)

// onePartition leaves, on the partitioned layout, only the current month's
// partitions (the test's rows are all in it), so that a plan test reads the
// plan of the one partition that holds rows rather than scans of empty
// months. On the plain layout it does nothing.
func onePartition(t *testing.T, d *db.DB) {
	t.Helper()
	if !dbtest.Partitioned() {
		return
	}
	ctx := context.Background()
	parts, err := layout.Partitions(ctx, d.SQL())
	require.NoError(t, err)
	current := layout.MonthStart(time.Now())
	for _, p := range parts {
		if p.Month.Equal(current) {
			continue
		}
		for _, s := range []string{
			`ALTER TABLE item_state_history DETACH PARTITION ` + p.History, `DROP TABLE ` + p.History,
			`ALTER TABLE item_execution DETACH PARTITION ` + p.ItemExecution, `DROP TABLE ` + p.ItemExecution,
		} {
			_, err := d.SQL().ExecContext(ctx, s)
			require.NoError(t, err)
		}
	}
}

// parentNames rewrites a plan's partition and partition index names to
// their parents' (item_execution_p202612_pkey -> item_execution_pkey), so
// one assertion reads both layouts. On the plain layout it returns plan.
func parentNames(t *testing.T, d *db.DB, plan string) string {
	t.Helper()
	if !dbtest.Partitioned() {
		return plan
	}
	rows, err := d.SQL().QueryContext(context.Background(), `SELECT c.relname, p.relname
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE c.relname ~ '^(item_execution|item_state_history)_p[0-9]{6}'`)
	require.NoError(t, err)
	defer rows.Close()
	type pair struct{ child, parent string }
	var pairs []pair
	for rows.Next() {
		var p pair
		require.NoError(t, rows.Scan(&p.child, &p.parent))
		pairs = append(pairs, p)
	}
	require.NoError(t, rows.Err())
	sort.Slice(pairs, func(i, j int) bool { return len(pairs[i].child) > len(pairs[j].child) })
	for _, p := range pairs {
		plan = strings.ReplaceAll(plan, p.child, p.parent)
	}
	return plan
}
