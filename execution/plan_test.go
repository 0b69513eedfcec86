package execution

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
)

// TestReportPlansStayOnPrimaryKey: under the generic plan that a prepared
// statement ends up with, Complete and Fail reach each reported row through
// the primary key and read its payload or message by key, with no join that
// compares every reported row with every other (the O(n²) join filter of a
// nested loop over unnest()ed arrays).
func TestReportPlansStayOnPrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	onePartition(t, d)
	c := New(d, Options{})
	t.Cleanup(func() { _ = c.Close() })
	a, err := d.Automation.Create().SetName("plan").Save(ctx)
	require.NoError(t, err)
	bt, err := d.Batch.Create().SetAutomation(a).SetName("b").Save(ctx)
	require.NoError(t, err)
	items := make([]NewItem, 2000)
	for i := range items {
		items[i] = NewItem{SequenceNumber: int32(i)}
	}
	_, err = c.AddItems(ctx, bt.ID, Items(items))
	require.NoError(t, err)
	_, err = c.StartRun(ctx, a.ID, StartOptions{})
	require.NoError(t, err)
	got, err := c.Claim(ctx, "w", 1000, time.Minute)
	require.NoError(t, err)
	ids := make([]uuid.UUID, len(got))
	var obj strings.Builder
	obj.WriteByte('{')
	for i, cl := range got {
		ids[i] = cl.ID
		if i > 0 {
			obj.WriteByte(',')
		}
		fmt.Fprintf(&obj, `"%s":{"a":1,"p":{"ok":true},"m":"x"}`, cl.ID)
	}
	obj.WriteByte('}')
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	idList := "{" + strings.Join(strs, ",") + "}"
	_, err = d.SQL().ExecContext(ctx, "ANALYZE item_execution")
	require.NoError(t, err)

	for _, tt := range []struct {
		name, query string
		args        []any
	}{
		{"complete", completeSQL, []any{"w", idList, obj.String()}},
		{"fail", failSQL, []any{"w", idList, obj.String(), "1000", "1000", "0.1"}},
	} {
		conn, err := d.SQL().Conn(ctx)
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan")
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "PREPARE report AS "+tt.query)
		require.NoError(t, err)
		params := make([]string, len(tt.args))
		for i, a := range tt.args {
			params[i] = pq.QuoteLiteral(a.(string))
		}
		text := parentNames(t, d, explain(ctx, t, conn, "EXPLAIN EXECUTE report("+strings.Join(params, ", ")+")"))
		require.NotContains(t, text, "Join Filter", tt.name+":\n"+text)
		require.NotContains(t, text, "Nested Loop", tt.name+":\n"+text)
		require.NotContains(t, text, "Function Scan", tt.name+":\n"+text)
		// An index scan or, once time-ordered keys cluster the reported rows
		// on few pages, a bitmap scan: both reach the rows by primary key.
		require.Regexp(t, `(Index Scan using|Bitmap Index Scan on) item_execution_pkey`, text, tt.name+":\n"+text)
		require.Contains(t, text, "Index Cond: (id = ANY", tt.name+":\n"+text)
		t.Logf("%s generic plan:\n%s", tt.name, text)
		_, err = conn.ExecContext(ctx, "DEALLOCATE report; RESET plan_cache_mode")
		require.NoError(t, err)
		require.NoError(t, conn.Close())
	}
}

func explain(ctx context.Context, t *testing.T, conn *sql.Conn, query string) string {
	t.Helper()
	rows, err := conn.QueryContext(ctx, query)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	return strings.Join(plan, "\n")
}
