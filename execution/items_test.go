package execution_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
)

// reusingItems yields n items {"n": i} from one buffer that it overwrites
// for the next item, as a reader of a file does; bad (when >= 0) gets an
// invalid payload, and failAt (when >= 0) ends the iteration with an error.
// pulled counts the items read.
func reusingItems(n, bad, failAt int, pulled *int) iter.Seq2[execution.NewItem, error] {
	return func(yield func(execution.NewItem, error) bool) {
		buf := make([]byte, 0, 64)
		for i := range n {
			if i == failAt {
				yield(execution.NewItem{}, errors.New("disk on fire"))
				return
			}
			*pulled++
			buf = buf[:0]
			if i == bad {
				buf = append(buf, `{"n":"not a number"}`...)
			} else {
				buf = strconv.AppendInt(append(buf, `{"n":`...), int64(i), 10)
				buf = append(buf, '}')
			}
			if !yield(execution.NewItem{SequenceNumber: int32(i), Payload: buf}, nil) {
				return
			}
		}
	}
}

// AddItems validates groups of items on several goroutines while it writes
// earlier ones: the outcome is the one of a plain loop, in item order.
func TestAddItemsInOrderWhileValidatingAhead(t *testing.T) {
	t.Parallel()
	const n = 5000
	for _, tc := range []struct {
		name        string
		bad, failAt int
		wantErr     string
		wantAdded   int64
		maxPulled   int
		inEntTx     bool
		checkStored bool
		wantInvalid bool
	}{
		{name: "all valid, payload buffer reused by the iterator", bad: -1, failAt: -1, wantAdded: n, maxPulled: n, checkStored: true},
		{name: "all valid through an ent.Tx (multi-row INSERTs)", bad: -1, failAt: -1, wantAdded: n, maxPulled: n, inEntTx: true, checkStored: true},
		{name: "an invalid item deep in: named, nothing added, reading stops soon after", bad: 3210, failAt: -1, wantErr: "item 3210: /n", maxPulled: 3210 + 8*256, wantInvalid: true},
		{name: "an invalid first item", bad: 0, failAt: -1, wantErr: "item 0: /n", maxPulled: 8 * 256, wantInvalid: true},
		{name: "the iterator fails after valid items", bad: -1, failAt: 4000, wantErr: "reading item 4000: disk on fire", maxPulled: 4000},
		{name: "an invalid item before the iterator's failure wins", bad: 100, failAt: 200, wantErr: "item 100: /n", maxPulled: 200, wantInvalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, execution.Options{}) // the automation has an item_schema: n is an integer
			bt, err := b.db.Batch.Create().SetAutomation(b.auto).SetName("ingest").Save(ctx)
			require.NoError(t, err)
			pulled := 0
			items := reusingItems(n, tc.bad, tc.failAt, &pulled)
			var added int64
			if tc.inEntTx {
				tx, err := b.db.Tx(ctx)
				require.NoError(t, err)
				added, err = b.exec.AddItemsTx(ctx, tx, bt.ID, items)
				require.NoError(t, err)
				require.NoError(t, tx.Commit())
			} else {
				added, err = b.exec.AddItems(ctx, bt.ID, items)
			}
			require.LessOrEqual(t, pulled, tc.maxPulled, "items read from the iterator")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Equal(t, tc.wantInvalid, errors.Is(err, runledger.ErrInvalid), "%v", err)
				require.Zero(t, added)
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.wantAdded, added)
			}
			var count int64
			var sum sql.NullInt64
			require.NoError(t, b.db.SQL().QueryRowContext(ctx,
				`SELECT count(*), sum((payload->>'n')::int8 - sequence_number) FROM item WHERE batch_id = $1`, bt.ID).Scan(&count, &sum))
			require.Equal(t, tc.wantAdded, count)
			if tc.checkStored {
				require.Zero(t, sum.Int64, "every item stored with its own payload")
			}
		})
	}
}

// A sequence number below zero is refused like an invalid payload, in order.
func TestAddItemsNegativeSequenceNumber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, execution.Options{})
	bt, err := b.db.Batch.Create().SetAutomation(b.auto).SetName("neg-" + uuid.NewString()[:6]).Save(ctx)
	require.NoError(t, err)
	items := make([]execution.NewItem, 600)
	for i := range items {
		items[i] = execution.NewItem{SequenceNumber: int32(i), Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
	}
	items[400].SequenceNumber = -4
	_, err = b.exec.AddItems(ctx, bt.ID, execution.Items(items))
	require.ErrorIs(t, err, runledger.ErrInvalid)
	require.ErrorContains(t, err, "item -4: sequence_number")
}

// AddItems records the acting user (runledger.WithActor) as the items'
// created_by and updated_by, and leaves both NULL without one.
func TestAddItemsRecordsTheActor(t *testing.T) {
	t.Parallel()
	for _, actor := range []string{"", "loader"} {
		t.Run("actor "+strconv.Quote(actor), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, execution.Options{})
			bt, err := b.db.Batch.Create().SetAutomation(b.auto).SetName("actor").Save(ctx)
			require.NoError(t, err)
			if actor != "" {
				ctx = runledger.WithActor(ctx, actor)
			}
			n, err := b.exec.AddItems(ctx, bt.ID, execution.Items([]execution.NewItem{
				{SequenceNumber: 0, Payload: json.RawMessage(`{"n":0}`)}, {SequenceNumber: 1, Payload: json.RawMessage(`{"n":1}`)}}))
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
			var created, updated sql.NullString
			var distinct int
			require.NoError(t, b.db.SQL().QueryRowContext(ctx, `SELECT min(created_by), min(updated_by), count(DISTINCT coalesce(created_by, '-'))
				FROM item WHERE batch_id = $1`, bt.ID).Scan(&created, &updated, &distinct))
			require.Equal(t, 1, distinct)
			require.Equal(t, sql.NullString{String: actor, Valid: actor != ""}, created)
			require.Equal(t, created, updated)
		})
	}
}
