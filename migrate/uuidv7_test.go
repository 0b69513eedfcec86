package migrate_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

// unixMilli reads the 48-bit unix-millisecond timestamp of a version 7 UUID.
func unixMilli(id uuid.UUID) int64 {
	var b [8]byte
	copy(b[2:], id[:6])
	return int64(binary.BigEndian.Uint64(b[:]))
}

// The migration uuidv7 adds runledger_uuidv7(): version 7 layout, the
// database's clock, time order, and inlined where it is called
// (uuidv7_random: its random bits come from random()).
func TestUUIDv7(t *testing.T) {
	t.Parallel()
	d := openSQL(t, dbtest.NewURL(t))
	ctx := context.Background()

	t.Run("version and variant bits", func(t *testing.T) {
		t.Parallel()
		rows, err := d.QueryContext(ctx, `SELECT runledger_uuidv7() FROM generate_series(1, 2000)`)
		require.NoError(t, err)
		defer rows.Close()
		seen := map[uuid.UUID]bool{}
		var ones, zeros [16]int // per bit of rand_a and of the low byte of rand_b
		for rows.Next() {
			var id uuid.UUID
			require.NoError(t, rows.Scan(&id))
			require.EqualValues(t, 7, id.Version(), "%s", id)
			require.Equal(t, uuid.RFC4122, id.Variant(), "%s", id)
			require.Equal(t, byte(0x70), id[6]&0xf0, "version nibble of %s", id)
			require.Equal(t, byte(0x80), id[8]&0xc0, "variant bits of %s", id)
			require.False(t, seen[id], "duplicate %s", id)
			seen[id] = true
			bits := uint16(id[6]&0x0f)<<12 | uint16(id[7])<<4 | uint16(id[15]&0x0f)
			for i := range 16 {
				if bits&(1<<i) != 0 {
					ones[i]++
				} else {
					zeros[i]++
				}
			}
		}
		require.NoError(t, rows.Err())
		require.Len(t, seen, 2000)
		for i := range 16 {
			require.Positive(t, ones[i], "bit %d is never set: not random", i)
			require.Positive(t, zeros[i], "bit %d is always set: not random", i)
		}
	})

	t.Run("timestamp between the clock readings around it", func(t *testing.T) {
		t.Parallel()
		var before, after time.Time
		var id uuid.UUID
		tx, err := d.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&before))
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT runledger_uuidv7()`).Scan(&id))
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&after))
		ms := unixMilli(id)
		require.GreaterOrEqual(t, ms, before.UnixMilli(), "%s made before %s", id, before)
		require.LessOrEqual(t, ms, after.UnixMilli(), "%s made after %s", id, after)
		// clock_timestamp(), not now(): later in the same transaction, a later time.
		time.Sleep(5 * time.Millisecond)
		var later uuid.UUID
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT runledger_uuidv7()`).Scan(&later))
		require.Greater(t, unixMilli(later), ms)
	})

	t.Run("ordered across milliseconds", func(t *testing.T) {
		t.Parallel()
		var prev uuid.UUID
		for i := range 20 {
			var id uuid.UUID
			require.NoError(t, d.QueryRowContext(ctx, `SELECT runledger_uuidv7()`).Scan(&id))
			if i > 0 {
				require.Positive(t, bytes.Compare(id[:], prev[:]), "%s after %s", id, prev)
				var sorted bool
				require.NoError(t, d.QueryRowContext(ctx, `SELECT $1::uuid > $2::uuid`, id, prev).Scan(&sorted))
				require.True(t, sorted, "PostgreSQL orders %s after %s", id, prev)
			}
			prev = id
			time.Sleep(2 * time.Millisecond)
		}
		// Within one statement too: every row reads the clock again.
		rows, err := d.QueryContext(ctx, `SELECT runledger_uuidv7() FROM generate_series(1, 5000) ORDER BY generate_series`)
		require.NoError(t, err)
		defer rows.Close()
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		steps := 0
		for i := 1; i < len(ids); i++ {
			a, b := unixMilli(ids[i-1]), unixMilli(ids[i])
			require.GreaterOrEqual(t, b, a, "row %d: the clock went back", i)
			if b > a {
				steps++
				require.Positive(t, bytes.Compare(ids[i][:], ids[i-1][:]), "%s after %s", ids[i], ids[i-1])
			}
		}
		require.Positive(t, steps, "5000 rows in one millisecond: the clock is read once per statement?")
	})

	t.Run("inlined: no function call at run time", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{
			`EXPLAIN (VERBOSE) SELECT runledger_uuidv7()`,
			`EXPLAIN (VERBOSE) INSERT INTO item_state_history (item_execution_id, new_status) VALUES (gen_random_uuid(), 'queued')`,
			`EXPLAIN (VERBOSE) INSERT INTO item (batch_id, sequence_number) SELECT gen_random_uuid(), n FROM generate_series(1, 3) n`,
		} {
			plan := explain(t, d, q)
			require.NotContains(t, plan, "runledger_uuidv7", "%s:\n%s", q, plan)
			require.Contains(t, plan, "random()", "%s:\n%s", q, plan)
			require.Contains(t, plan, "clock_timestamp()", "%s:\n%s", q, plan)
		}
	})
}

func explain(t *testing.T, d *sql.DB, q string) string {
	t.Helper()
	rows, err := d.QueryContext(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		require.NoError(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "\n")
}

// A diff that changes a default to a call of a function from a hand-written
// file must work: the replay's normalization drops the public schema with
// the function, and Atlas compares the old and new defaults with a SELECT on
// the dev database (42883 "function does not exist" without migrate's hook).
func TestDiffDefaultCallsDirectoryFunction(t *testing.T) {
	t.Parallel()
	files, err := embedded(t).Files()
	require.NoError(t, err)
	last, err := time.Parse("20060102150405", files[len(files)-1].Version())
	require.NoError(t, err)
	v4 := last.Add(time.Second).Format("20060102150405") + "_v4_default.sql"
	dir := copyDir(t, map[string]string{v4: `ALTER TABLE "item" ALTER COLUMN "id" SET DEFAULT gen_random_uuid();` + "\n"})

	name, err := migrate.Diff(context.Background(), dir, "back_to_v7", migrate.DiffOptions{DevURL: dbtest.ServerURL()})
	require.NoError(t, err)
	require.NotEmpty(t, name)
	planned, err := dir.Open(name)
	require.NoError(t, err)
	defer func() { _ = planned.Close() }()
	body, err := io.ReadAll(planned)
	require.NoError(t, err)
	require.Equal(t, "-- Modify \"item\" table\nALTER TABLE \"item\" ALTER COLUMN \"id\" SET DEFAULT runledger_uuidv7();\n", string(body))
	require.NoError(t, migrate.Check(context.Background(), dir, migrate.DiffOptions{DevURL: dbtest.ServerURL()}))
}
