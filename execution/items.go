package execution

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"runtime"

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
// (runledger.ErrConflict) aborts the whole call and adds nothing. The
// iterator is read on the calling goroutine; payloads are validated in
// groups on other goroutines while the items before them are sent, and the
// first error in item order is the one returned.
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
// addChunk rows): the items exist only if that transaction commits. The
// iterator must not use that transaction: AddItemsTx writes through it
// while the iterator runs. Items
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
	return addValidated(ctx, sink, items, schema)
}

// ingestGroup is how many items are validated together, on one goroutine.
const ingestGroup = 256

// pulledItem is an item as read from the caller's iterator: its payload
// copied, since the iterator may reuse its buffer once it yields the next.
type pulledItem struct {
	seq int32
	raw []byte
}

// itemGroup is a run of consecutive items on their way to the database.
type itemGroup struct {
	items  []pulledItem
	bodies []sql.NullString // filled by the validation
	bad    int              // the first invalid item (len(items) when none)
	err    error            // why it is invalid
	tail   error            // an error of the iterator after the items
	done   chan struct{}    // closed when validated
}

// addValidated writes the items through sink, in order, once check passed
// on them. The caller's iterator is read on this goroutine; the groups of
// items it yields are validated on up to GOMAXPROCS goroutines at once and
// written, in order, by one more, so that validating a payload against a
// JSON Schema (a few µs each) overlaps with the COPY of those before it
// instead of adding to it. The first error in item order wins: the items
// before it are written (the caller rolls them back), none after; the
// iterator may have been read a few groups further by then. Memory stays
// bounded: about two groups per CPU are in flight.
func addValidated(ctx context.Context, sink *itemSink, items iter.Seq2[NewItem, error], schema *payload.Schema) (int64, error) {
	workers := max(1, runtime.GOMAXPROCS(0)-1)
	queue := make(chan *itemGroup, workers)
	slots := make(chan struct{}, workers)
	stop := make(chan struct{}) // closed by the writer at its first error
	var (
		n    int64
		werr error
	)
	written := make(chan struct{})
	go func() { // the writer: the only goroutine that uses the transaction
		defer close(written)
		for g := range queue {
			<-g.done // also when draining: no validation outlives the call
			if werr != nil {
				continue // drain: the producer may still send
			}
			for i := range g.bad {
				if werr = sink.add(ctx, g.items[i].seq, g.bodies[i]); werr != nil {
					break
				}
				n++
			}
			if werr == nil {
				werr = cmp.Or(g.err, g.tail)
			}
			if werr != nil {
				close(stop)
			}
		}
		if werr == nil {
			werr = sink.flush(ctx)
		}
	}()
	validate := func(g *itemGroup) {
		defer func() { <-slots }()
		defer close(g.done)
		defer func() {
			// A panic here would end the process; the caller gets it
			// as the group's error instead, as it would on its goroutine.
			if v := recover(); v != nil {
				g.bad, g.err = 0, fmt.Errorf("execution: validating items: panic: %v", v)
			}
		}()
		g.bad = len(g.items)
		g.bodies = make([]sql.NullString, len(g.items))
		// The common case, every payload valid, in one decoding of the
		// group; otherwise item by item, for the first error and its words.
		raws := make([][]byte, 0, len(g.items))
		for _, it := range g.items {
			if hasPayload(it.raw) {
				raws = append(raws, it.raw)
			}
		}
		checked := schema.AllValid(raws)
		for i, it := range g.items {
			body, err := checkItem(schema, it, checked)
			if err != nil {
				g.bad, g.err = i, err
				return
			}
			g.bodies[i] = body
		}
	}
	send := func(g *itemGroup) {
		slots <- struct{}{}
		go validate(g)
		queue <- g
	}
	func() {
		// Even if the iterator panics, the writer ends before we return.
		defer func() {
			close(queue)
			<-written
		}()
		g := &itemGroup{done: make(chan struct{})}
		pulled := 0
		for it, err := range items {
			if err != nil {
				g.tail = fmt.Errorf("execution: reading item %d: %w", pulled, err)
				break
			}
			g.items = append(g.items, pulledItem{seq: it.SequenceNumber, raw: bytes.Clone(it.Payload)})
			pulled++
			if len(g.items) == ingestGroup {
				send(g)
				g = &itemGroup{done: make(chan struct{})}
				select {
				case <-stop:
					return // an earlier item failed: read no further
				default:
				}
			}
		}
		send(g)
	}()
	return n, werr
}

// hasPayload tells whether raw is a payload to store (nil and JSON null are
// none).
func hasPayload(raw []byte) bool { return len(raw) > 0 && string(raw) != "null" }

// checkItem validates one item: its sequence number, and its payload
// against the automation's item_schema (nil: well-formed JSON of bounded
// depth), unless checked says its group's payloads all passed already. It
// returns the payload to store.
func checkItem(schema *payload.Schema, it pulledItem, checked bool) (sql.NullString, error) {
	if it.seq < 0 {
		return sql.NullString{}, &runledger.InvalidError{Field: fmt.Sprintf("item %d: sequence_number", it.seq), Reason: "must be >= 0"}
	}
	subject := func() string { return fmt.Sprintf("item %d", it.seq) }
	if hasPayload(it.raw) {
		if checked {
			return sql.NullString{String: string(it.raw), Valid: true}, nil
		}
		if err := schema.ValidateRawFunc(subject, it.raw); err != nil {
			return sql.NullString{}, err
		}
		if schema == nil {
			if err := payload.CheckRaw(subject, it.raw); err != nil {
				return sql.NullString{}, err
			}
		}
		return sql.NullString{String: string(it.raw), Valid: true}, nil
	}
	if schema != nil {
		if err := schema.Validate(subject(), nil); err != nil {
			return sql.NullString{}, err
		}
	}
	return sql.NullString{}, nil
}

// itemSink writes items: through COPY when the transaction can prepare
// statements (*sql.Tx), else in multi-row INSERTs of addChunk rows.
type itemSink struct {
	tx        txQuerier
	copy      *sql.Stmt
	batchID   uuid.UUID
	batchText string // batchID as COPY sends it, made once
	actor     sql.NullString
	seqs      []int32
	bodies    []sql.NullString
}

func newItemSink(ctx context.Context, tx txQuerier, batchID uuid.UUID, actor sql.NullString) (*itemSink, error) {
	s := &itemSink{tx: tx, batchID: batchID, batchText: batchID.String(), actor: actor}
	if p, ok := tx.(interface {
		PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	}); ok {
		// Without an actor, created_by and updated_by keep their default
		// (NULL) and each row carries three values instead of five.
		query := `COPY item (batch_id, sequence_number, payload) FROM STDIN`
		if actor.Valid {
			query = `COPY item (batch_id, sequence_number, payload, created_by, updated_by) FROM STDIN`
		}
		stmt, err := p.PrepareContext(ctx, query)
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
		var err error
		if s.actor.Valid {
			_, err = s.copy.ExecContext(ctx, s.batchText, seq, v, s.actor, s.actor)
		} else {
			_, err = s.copy.ExecContext(ctx, s.batchText, seq, v)
		}
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
