package db_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/dbtest"
)

// TestReadURL: Config.ReadURL opens a second pool whose sessions refuse
// writes; the primary pool still writes. (Against a real standby:
// execution's TestReadsOnStandby.)
func TestReadURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewURL(t)

	t.Run("Open with ReadURL", func(t *testing.T) {
		t.Parallel()
		d, err := db.Open(ctx, db.Config{URL: url, ReadURL: url})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, d.Close()) })
		require.False(t, d.ReadOnly())
		r := d.Reader()
		require.NotSame(t, d, r)
		require.True(t, r.ReadOnly())

		_, err = d.Engine.Create().SetName("jenkins-rw").SetType("jenkins").Save(ctx)
		require.NoError(t, err, "the primary pool writes")
		_, err = r.Engine.Create().SetName("jenkins-ro").SetType("jenkins").Save(ctx)
		var pqErr *pq.Error
		require.ErrorAs(t, err, &pqErr)
		require.EqualValues(t, "25006", pqErr.Code, "read_only_sql_transaction")
		_, err = r.SQL().ExecContext(ctx, `DELETE FROM engine`)
		require.ErrorAs(t, err, &pqErr)
		require.EqualValues(t, "25006", pqErr.Code)

		n, err := r.Engine.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "the read pool reads")

		st, err := r.Staleness(ctx)
		require.NoError(t, err)
		require.Equal(t, db.Staleness{}, *st, "a primary has no replay lag")
		require.Equal(t, "primary", st.String())
	})
	t.Run("Reader without ReadURL is the database itself", func(t *testing.T) {
		t.Parallel()
		d, err := db.Open(ctx, db.Config{URL: url})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, d.Close()) })
		require.Same(t, d, d.Reader())
	})
	t.Run("OpenReplica is read-only", func(t *testing.T) {
		t.Parallel()
		r, err := db.OpenReplica(ctx, db.Config{URL: url})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, r.Close()) })
		require.True(t, r.ReadOnly())
		require.Same(t, r, r.Reader())
		var ro string
		require.NoError(t, r.SQL().QueryRowContext(ctx, `SHOW default_transaction_read_only`).Scan(&ro))
		require.Equal(t, "on", ro)
	})
	t.Run("bad configurations", func(t *testing.T) {
		t.Parallel()
		_, err := db.OpenReplica(ctx, db.Config{URL: url, ReadURL: url})
		require.ErrorIs(t, err, runledger.ErrInvalid)
		_, err = db.Open(ctx, db.Config{URL: url, ReadURL: "postgres://u:s3cret@host:port/x"})
		require.ErrorIs(t, err, runledger.ErrInvalid)
		require.NotContains(t, err.Error(), "s3cret")
		var ie *runledger.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "ReadURL", ie.Field)
	})
}

func TestStalenessJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 10, 41, 2, 0, time.UTC)
	tests := []struct {
		name string
		in   db.Staleness
		json string
		text string
	}{
		{"primary", db.Staleness{}, `{"standby":false,"caught_up":false,"lag_seconds":0}`, "primary"},
		{"caught up", db.Staleness{Standby: true, CaughtUp: true, LastReplayedAt: at},
			`{"standby":true,"caught_up":true,"lag_seconds":0,"last_replayed_at":"2026-12-06T10:41:02Z"}`,
			"standby, caught up (last replayed transaction 2026-12-06 10:41:02.000 UTC)"},
		{"lagging", db.Staleness{Standby: true, Lag: 1500 * time.Millisecond, LastReplayedAt: at},
			`{"standby":true,"caught_up":false,"lag_seconds":1.5,"last_replayed_at":"2026-12-06T10:41:02Z"}`,
			"standby, replay lag 1.5s (last replayed transaction 2026-12-06 10:41:02.000 UTC)"},
		{"nothing replayed", db.Staleness{Standby: true, CaughtUp: true},
			`{"standby":true,"caught_up":true,"lag_seconds":0}`,
			"standby, caught up (no transaction replayed yet)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.in)
			require.NoError(t, err)
			require.JSONEq(t, tt.json, string(b))
			require.Equal(t, tt.text, tt.in.String())
			var back db.Staleness
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, tt.in, back)
		})
	}
}
