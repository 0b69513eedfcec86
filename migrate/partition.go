package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/runledger/runledger/internal/layout"
)

// The table layouts (docs/scaling.md, section 3).
const (
	// LayoutPlain is the layout the migration files build: the default.
	LayoutPlain = layout.Plain
	// LayoutPartitioned is the opt-in layout: item_execution partitioned by
	// RANGE (id) and item_state_history by RANGE (item_execution_id), one
	// partition per month of version 7 UUIDs.
	LayoutPartitioned = layout.Partitioned
)

// PartitionOptions tune Partition.
type PartitionOptions struct {
	// Ahead is how many months after the current one get partitions
	// (default 3). Later months come from the Runner's elected maintainer
	// or execution.Client.EnsurePartitions.
	Ahead int
	// Now is the current time (default time.Now()); the months count from it.
	Now time.Time
}

// PartitionResult is what Partition did.
type PartitionResult struct {
	// Already is set when the database was partitioned before the call.
	Already bool
	// Months are the months that got partitions (their first instant, UTC).
	Months []time.Time
	// ItemExecutions and History count the rows moved into the partitions.
	ItemExecutions, History int64
}

// Layout returns the layout of a migrated database: LayoutPlain or
// LayoutPartitioned. The catalog is the record: item_execution is a
// partitioned table or it is not.
func Layout(ctx context.Context, db *sql.DB) (string, error) {
	return layout.Current(ctx, db)
}

// Partition converts a migrated database, empty or not, to the partitioned
// layout in one transaction under the migration lock (two deploys never
// race): the two tables are re-created partitioned with their columns,
// defaults, CHECKs, indexes, foreign keys, triggers, owner and grants, one
// partition per month from the oldest item execution's to Ahead months
// after now's, and their rows moved. Every statement trigger of the parents
// is copied onto each partition, so a statement aimed at a partition runs
// the same guards. It refuses a database holding item executions whose ids
// are not version 7 UUIDs. On a partitioned database it does nothing.
//
// The layout's deviations: item_state_history's primary key is
// (id, item_execution_id); the unique index on item_execution (run_id,
// item_id) is a plain index; an item execution whose id falls in no
// partition cannot be inserted. Later migration files run on it as written:
// adding columns and plain indexes works, a unique index without the
// partition key does not (the documented caveat of the switch). There is no
// way back but a dump and restore.
func Partition(ctx context.Context, db *sql.DB, opts PartitionOptions) (*PartitionResult, error) {
	conn, unlock, err := lockedConn(ctx, db)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return partitionOn(ctx, conn, opts)
}

// partitionOn converts on a connection that holds the migration lock.
func partitionOn(ctx context.Context, conn *sql.Conn, opts PartitionOptions) (*PartitionResult, error) {
	if opts.Ahead <= 0 {
		opts.Ahead = layout.DefaultAhead
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate: partition: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	r, err := layout.Convert(ctx, tx, opts.Ahead, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("migrate: partition: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("migrate: partition: commit: %w", err)
	}
	return &PartitionResult{Already: r.Already, Months: r.Months, ItemExecutions: r.ItemExecutions, History: r.History}, nil
}
