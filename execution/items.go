package execution

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/google/uuid"

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
		var (
			raw      []byte
			isActive bool
		)
		err := tx.QueryRowContext(ctx, `SELECT a.item_schema, b.is_active AND a.is_active FROM batch b JOIN automation a ON a.id = b.automation_id WHERE b.id = $1`, batchID).Scan(&raw, &isActive)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("execution: batch %s: %w", batchID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !isActive {
			return &runledger.InvalidError{Field: "batch", Reason: fmt.Sprintf("batch %s or its automation is inactive", batchID)}
		}
		schema, err := compileRaw("automation.item_schema", raw)
		if err != nil {
			return err
		}
		actor, _ := runledger.ActorFrom(ctx)
		stmt, err := tx.PrepareContext(ctx, `COPY item (batch_id, sequence_number, payload, created_by, updated_by) FROM STDIN`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for it, err := range items {
			if err != nil {
				return fmt.Errorf("execution: reading item %d: %w", n, err)
			}
			if it.SequenceNumber < 0 {
				return &runledger.InvalidError{Field: fmt.Sprintf("item %d: sequence_number", it.SequenceNumber), Reason: "must be >= 0"}
			}
			seq := it.SequenceNumber
			subject := func() string { return fmt.Sprintf("item %d", seq) }
			var p any
			if len(it.Payload) > 0 && string(it.Payload) != "null" {
				if err := schema.ValidateRawFunc(subject, it.Payload); err != nil {
					return err
				}
				if schema == nil {
					if err := payload.CheckRaw(subject, it.Payload); err != nil {
						return err
					}
				}
				p = string(it.Payload)
			} else if schema != nil {
				if err := schema.Validate(subject(), nil); err != nil {
					return err
				}
			}
			if _, err := stmt.ExecContext(ctx, batchID.String(), it.SequenceNumber, p, nullString(actor), nullString(actor)); err != nil {
				return err
			}
			n++
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
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
