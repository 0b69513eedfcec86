package execution

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/payload"
)

// NewItem is an item to add to a batch.
type NewItem struct {
	SequenceNumber int32           // its position in the batch, unique within it, >= 0
	Payload        json.RawMessage // nil for none; validated against the automation's item_schema
}

// Items adapts a slice to the iterator AddItems takes.
func Items(items []NewItem) iter.Seq2[NewItem, error] {
	return func(yield func(NewItem, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// AddItems adds the items to a batch in one transaction, streamed to the
// database with COPY: memory stays bounded whatever the count. Every payload
// is validated against the automation's item_schema first; an invalid one
// (an *runledger.InvalidError naming the item and the JSON pointer of the
// failing value), an error from the iterator or a duplicate sequence number
// (runledger.ErrConflict) aborts the whole call and adds nothing.
func (c *Client) AddItems(ctx context.Context, batchID uuid.UUID, items iter.Seq2[NewItem, error]) (int64, error) {
	var n int64
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = c.addItems(ctx, tx, batchID, items)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AddItemsTx is AddItems inside the caller's transaction (a *sql.Tx, which
// streams with COPY, or an *ent.Tx, which inserts in chunks of
// addChunk rows): the items exist only if that transaction commits. Items
// only join runs started after them (StartRun takes the batch's items as
// they are), so adding items wakes no runner. Errors are translated; after
// one, roll the transaction back.
func (c *Client) AddItemsTx(ctx context.Context, tx Tx, batchID uuid.UUID, items iter.Seq2[NewItem, error]) (int64, error) {
	n, err := c.addItems(ctx, tx, batchID, items)
	return n, translate(ctx, err)
}

// addChunk is the number of items AddItemsTx inserts per statement when it
// cannot COPY.
const addChunk = 2000

func (c *Client) addItems(ctx context.Context, tx txQuerier, batchID uuid.UUID, items iter.Seq2[NewItem, error]) (int64, error) {
	var (
		n        int64
		raw      []byte
		isActive bool
	)
	err := queryRow(ctx, tx, `SELECT a.item_schema, b.is_active AND a.is_active FROM batch b JOIN automation a ON a.id = b.automation_id WHERE b.id = $1`, []any{batchID}, &raw, &isActive)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("execution: batch %s: %w", batchID, runledger.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	if !isActive {
		return 0, &runledger.InvalidError{Field: "batch", Reason: fmt.Sprintf("batch %s or its automation is inactive", batchID)}
	}
	schema, err := compileRaw("automation.item_schema", raw)
	if err != nil {
		return 0, err
	}
	actor, _ := runledger.ActorFrom(ctx)
	sink, err := newItemSink(ctx, tx, batchID, nullString(actor))
	if err != nil {
		return 0, err
	}
	defer sink.close()
	for it, err := range items {
		if err != nil {
			return n, fmt.Errorf("execution: reading item %d: %w", n, err)
		}
		if it.SequenceNumber < 0 {
			return n, &runledger.InvalidError{Field: fmt.Sprintf("item %d: sequence_number", it.SequenceNumber), Reason: "must be >= 0"}
		}
		seq := it.SequenceNumber
		subject := func() string { return fmt.Sprintf("item %d", seq) }
		var p sql.NullString
		if len(it.Payload) > 0 && string(it.Payload) != "null" {
			if err := schema.ValidateRawFunc(subject, it.Payload); err != nil {
				return n, err
			}
			if schema == nil {
				if err := payload.CheckRaw(subject, it.Payload); err != nil {
					return n, err
				}
			}
			p = sql.NullString{String: string(it.Payload), Valid: true}
		} else if schema != nil {
			if err := schema.Validate(subject(), nil); err != nil {
				return n, err
			}
		}
		if err := sink.add(ctx, it.SequenceNumber, p); err != nil {
			return n, err
		}
		n++
	}
	return n, sink.flush(ctx)
}

// itemSink writes items: through COPY when the transaction can prepare
// statements (*sql.Tx), else in multi-row INSERTs of addChunk rows.
type itemSink struct {
	tx      txQuerier
	copy    *sql.Stmt
	batchID uuid.UUID
	actor   sql.NullString
	seqs    []int32
	bodies  []sql.NullString
}

func newItemSink(ctx context.Context, tx txQuerier, batchID uuid.UUID, actor sql.NullString) (*itemSink, error) {
	s := &itemSink{tx: tx, batchID: batchID, actor: actor}
	if p, ok := tx.(interface {
		PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	}); ok {
		stmt, err := p.PrepareContext(ctx, `COPY item (batch_id, sequence_number, payload, created_by, updated_by) FROM STDIN`)
		if err != nil {
			return nil, err
		}
		s.copy = stmt
	}
	return s, nil
}

func (s *itemSink) add(ctx context.Context, seq int32, p sql.NullString) error {
	if s.copy != nil {
		var v any
		if p.Valid {
			v = p.String
		}
		_, err := s.copy.ExecContext(ctx, s.batchID.String(), seq, v, s.actor, s.actor)
		return err
	}
	s.seqs = append(s.seqs, seq)
	s.bodies = append(s.bodies, p)
	if len(s.seqs) >= addChunk {
		return s.insert(ctx)
	}
	return nil
}

func (s *itemSink) insert(ctx context.Context) error {
	if len(s.seqs) == 0 {
		return nil
	}
	_, err := s.tx.ExecContext(ctx, `INSERT INTO item (batch_id, sequence_number, payload, created_by, updated_by)
		SELECT $1, r.seq, r.body::jsonb, $4, $4 FROM unnest($2::int4[], $3::text[]) AS r(seq, body)`,
		s.batchID, pq.Array(s.seqs), pq.GenericArray{A: s.bodies}, s.actor)
	s.seqs, s.bodies = s.seqs[:0], s.bodies[:0]
	return err
}

func (s *itemSink) flush(ctx context.Context) error {
	if s.copy != nil {
		_, err := s.copy.ExecContext(ctx)
		return err
	}
	return s.insert(ctx)
}

func (s *itemSink) close() {
	if s.copy != nil {
		_ = s.copy.Close()
	}
}

func compileRaw(field string, raw []byte) (*payload.Schema, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &runledger.InvalidError{Field: field, Reason: "schema is not a JSON object", Err: err}
	}
	return payload.Compile(field, m)
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
