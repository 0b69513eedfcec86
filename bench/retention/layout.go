package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/pgserver"
	"github.com/runledger/runledger/migrate"
)

// uuidv7SQL makes a version 7 UUID for a time: its first 48 bits are the
// Unix time in milliseconds, the rest random (from a version 4 UUID, with
// the version bits set to 7). A prototype's stand-in for the migrations'
// own generator.
const uuidv7SQL = `CREATE OR REPLACE FUNCTION bench_uuidv7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
	SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
		PLACING substring(int8send((extract(epoch FROM ts) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$`

// boundSQL is the smallest version 7 UUID of a time: a partition bound.
const boundSQL = `SELECT encode(substring(int8send((extract(epoch FROM $1::timestamptz) * 1000)::bigint) FROM 3) || '\x00000000000000000000'::bytea, 'hex')::uuid`

// measureLayout builds, loads and measures one layout in its own database.
func measureLayout(ctx context.Context, cfg *config, server *pgserver.Server, layout string, logger *log.Logger) ([]result, error) {
	logger.Printf("== layout %s", layout)
	admin, err := sql.Open("postgres", server.URL("postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier("retention_"+layout)); err != nil {
		return nil, err
	}
	url := server.URL("retention_" + layout)
	raw, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		return nil, err
	}
	if _, err := migrate.Apply(ctx, raw, dir, migrate.ApplyOptions{}); err != nil {
		return nil, err
	}
	if _, err := raw.ExecContext(ctx, uuidv7SQL); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	base := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -cfg.months, 0)
	month := func(m int) time.Time { return base.AddDate(0, m, 0) }
	loss := "nothing: the migrations' layout"
	if layout == "shipped" {
		loss = "as documented for migrate.Partition (docs/scaling.md, section 3)"
	}
	if layout != "plain" && layout != "shipped" {
		if loss, err = partition(ctx, raw, layout, cfg.months+1, month); err != nil {
			return nil, fmt.Errorf("partition: %w", err)
		}
		logger.Printf("   partitioned: %s", loss)
	}

	d, err := db.Open(ctx, db.Config{URL: url})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{})
	defer func() { _ = x.Close() }()

	t0 := time.Now()
	l, err := newLoader(ctx, d.SQL(), layout, cfg.chunk)
	if err != nil {
		return nil, err
	}
	defer l.close()
	perRun := int64(cfg.chunk) * 302 / 100
	runs := int(int64(cfg.history) / perRun)
	perMonth := (runs + cfg.months - 1) / cfg.months
	for i := range runs {
		m, k := i/perMonth, i%perMonth
		at := month(m).Add(24*time.Hour + time.Duration(k)*(25*24*time.Hour/time.Duration(perMonth)))
		if err := l.loadRun(ctx, at); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if (i+1)%10 == 0 || i+1 == runs {
			logger.Printf("   loaded %d of %d runs (%s)", i+1, runs, time.Since(t0).Round(time.Second))
		}
	}
	if layout == "shipped" {
		t := time.Now()
		pr, err := migrate.Partition(ctx, raw, migrate.PartitionOptions{Ahead: 1})
		if err != nil {
			return nil, fmt.Errorf("migrate.Partition: %w", err)
		}
		logger.Printf("   migrate.Partition: %d months, %d item executions and %d history rows moved in %s",
			len(pr.Months), pr.ItemExecutions, pr.History, time.Since(t).Round(time.Millisecond))
	}
	if _, err := d.SQL().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, err
	}
	var totalI, totalH int64
	if err := d.SQL().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM item_execution), (SELECT count(*) FROM item_state_history)`).Scan(&totalI, &totalH); err != nil {
		return nil, err
	}
	logger.Printf("   %d item executions, %d history rows loaded and vacuumed (%s)", totalI, totalH, time.Since(t0).Round(time.Second))

	var out []result
	counts := func() (int64, int64, error) {
		var i, h int64
		err := d.SQL().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM item_execution), (SELECT count(*) FROM item_state_history)`).Scan(&i, &h)
		return i, h, err
	}
	if layout == "shipped" {
		// Month 0 by the shipped retention call.
		var dr execution.DropResult
		r, err := timed(ctx, d.SQL(), func() error {
			var err error
			dr, err = x.DropPartitions(ctx, month(1))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("DropPartitions: %w", err)
		}
		i1, h1, err := counts()
		if err != nil {
			return nil, err
		}
		if len(dr.Months) != 1 || len(dr.Kept) != 0 {
			return nil, fmt.Errorf("DropPartitions dropped %v, kept %v: want month 0 alone", dr.Months, dr.Kept)
		}
		r.layout, r.how, r.itemExecs, r.hist, r.totalI, r.totalHist, r.loss = layout, "Client.DropPartitions (DETACH + DROP of the month's two partitions, then DELETE of its runs)", totalI-i1, totalH-h1, totalI, totalH, loss
		logger.Printf("   DropPartitions of month 0: %d item executions, %d history rows, %d runs in %s, %.1f MB of WAL", r.itemExecs, r.hist, dr.Runs, r.took.Round(time.Millisecond), float64(r.wal)/(1<<20))
		return []result{r}, nil
	}
	// Purge of month 0.
	r, err := timed(ctx, d.SQL(), func() error {
		_, err := x.Purge(ctx, month(1), execution.PurgeOptions{})
		return err
	})
	if err != nil {
		return out, fmt.Errorf("purge: %w", err)
	}
	i1, h1, err := counts()
	if err != nil {
		return out, err
	}
	r.layout, r.how, r.itemExecs, r.hist, r.totalI, r.totalHist, r.loss = layout, "Purge (DELETE in steps of 5000, history by cascade)", totalI-i1, totalH-h1, totalI, totalH, loss
	logger.Printf("   Purge of month 0: %d item executions, %d history rows in %s, %.1f MB of WAL", r.itemExecs, r.hist, r.took.Round(time.Millisecond), float64(r.wal)/(1<<20))
	out = append(out, r)
	if layout == "plain" {
		return out, nil
	}
	// Month 1 by partition: detach and drop history's partition, then
	// item_execution's, then Purge the runs (nothing left under them but
	// batch executions and counts).
	r, err = timed(ctx, d.SQL(), func() error {
		for _, q := range []string{
			`ALTER TABLE item_state_history DETACH PARTITION item_state_history_m01`,
			`DROP TABLE item_state_history_m01`,
			`ALTER TABLE item_execution DETACH PARTITION item_execution_m01`,
			`DROP TABLE item_execution_m01`,
		} {
			t := time.Now()
			if _, err := d.SQL().ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			logger.Printf("   %s: %s", q, time.Since(t).Round(time.Millisecond))
		}
		t := time.Now()
		_, err := x.Purge(ctx, month(2), execution.PurgeOptions{})
		logger.Printf("   Purge of month 1's emptied runs: %s", time.Since(t).Round(time.Millisecond))
		return err
	})
	if err != nil {
		return out, fmt.Errorf("drop: %w", err)
	}
	i2, h2, err := counts()
	if err != nil {
		return out, err
	}
	r.layout, r.how, r.itemExecs, r.hist, r.totalI, r.totalHist, r.loss = layout, "DETACH + DROP of the month's two partitions, then Purge of its runs", i1-i2, h1-h2, totalI, totalH, loss
	logger.Printf("   partition drop of month 1: %d item executions, %d history rows in %s, %.1f MB of WAL", r.itemExecs, r.hist, r.took.Round(time.Millisecond), float64(r.wal)/(1<<20))
	return append(out, r), nil
}

// timed runs fn after a CHECKPOINT (untimed) and measures its time and the
// WAL it wrote.
func timed(ctx context.Context, q *sql.DB, fn func() error) (result, error) {
	var r result
	if _, err := q.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return r, err
	}
	var before string
	if err := q.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		return r, err
	}
	t := time.Now()
	if err := fn(); err != nil {
		return r, err
	}
	r.took = time.Since(t)
	err := q.QueryRowContext(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::bigint`, before).Scan(&r.wal)
	return r, err
}

// partition replaces item_execution and item_state_history (empty after
// the migrations) by partitioned tables of the layout with n monthly
// partitions, keeping their columns, defaults, CHECKs, indexes, foreign keys
// and triggers where the layout allows, and says what it could not keep.
func partition(ctx context.Context, q *sql.DB, layout string, n int, month func(int) time.Time) (string, error) {
	type def struct{ table, name, sql string }
	list := func(query string) ([]def, error) {
		var out []def
		rows, err := q.QueryContext(ctx, query)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var d def
			if err := rows.Scan(&d.table, &d.name, &d.sql); err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, rows.Err()
	}
	const tables = `('item_execution'::regclass, 'item_state_history'::regclass)`
	indexes, err := list(`SELECT indrelid::regclass::text, indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN ` + tables + ` AND NOT indisprimary`)
	if err != nil {
		return "", err
	}
	fks, err := list(`SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' AND conrelid IN ` + tables)
	if err != nil {
		return "", err
	}
	triggers, err := list(`SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid IN ` + tables + ` AND NOT tgisinternal`)
	if err != nil {
		return "", err
	}
	var lost []string
	ieKey, hKey, iePK, hPK, hExtra := "id", "item_execution_id", "id", "id, item_execution_id", ""
	if layout == "month" {
		ieKey, hKey, iePK, hPK, hExtra = "created_at", "item_execution_created_at", "id, created_at", "id, item_execution_created_at", ", item_execution_created_at timestamptz NOT NULL"
		lost = append(lost, "item_execution's primary key is (id, created_at)",
			"item_state_history gains item_execution_created_at (its triggers and the API must fill it)",
			"history's primary key is (id, item_execution_created_at)")
	} else {
		lost = append(lost, "history's primary key is (id, item_execution_id): its id alone is unique only by construction",
			"ids must be version 7 (time-ordered) UUIDs, and a row's time decides its partition")
	}
	stmts := []string{
		`ALTER TABLE item_state_history RENAME TO old_item_state_history`,
		`ALTER TABLE item_execution RENAME TO old_item_execution`,
		`CREATE TABLE item_execution (LIKE old_item_execution INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (` + ieKey + `)`,
		`CREATE TABLE item_state_history (LIKE old_item_state_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS` + hExtra + `) PARTITION BY RANGE (` + hKey + `)`,
		`DROP TABLE old_item_state_history, old_item_execution CASCADE`,
		`ALTER TABLE item_execution ADD PRIMARY KEY (` + iePK + `)`,
		`ALTER TABLE item_state_history ADD PRIMARY KEY (` + hPK + `)`,
	}
	if layout == "v7" {
		stmts = append(stmts,
			`ALTER TABLE item_execution ALTER COLUMN id SET DEFAULT bench_uuidv7(now())`,
			`ALTER TABLE item_state_history ALTER COLUMN id SET DEFAULT bench_uuidv7(now())`)
	}
	for m := range n {
		lo, hi := month(m), month(m+1)
		var loB, hiB any = lo, hi
		if layout == "v7" {
			var a, b uuid.UUID
			if err := q.QueryRowContext(ctx, boundSQL, lo).Scan(&a); err != nil {
				return "", err
			}
			if err := q.QueryRowContext(ctx, boundSQL, hi).Scan(&b); err != nil {
				return "", err
			}
			loB, hiB = a.String(), b.String()
		} else {
			loB, hiB = lo.Format(time.RFC3339), hi.Format(time.RFC3339)
		}
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLE item_execution_m%02d PARTITION OF item_execution FOR VALUES FROM ('%s') TO ('%s')`, m, loB, hiB),
			fmt.Sprintf(`CREATE TABLE item_state_history_m%02d PARTITION OF item_state_history FOR VALUES FROM ('%s') TO ('%s')`, m, loB, hiB))
	}
	for _, s := range stmts {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return "", fmt.Errorf("%s: %w", s, err)
		}
	}
	for _, ix := range indexes {
		if _, err := q.ExecContext(ctx, ix.sql); err != nil {
			plain := strings.Replace(ix.sql, "CREATE UNIQUE INDEX", "CREATE INDEX", 1)
			if plain == ix.sql {
				return "", fmt.Errorf("%s: %w", ix.sql, err)
			}
			if _, err := q.ExecContext(ctx, plain); err != nil {
				return "", fmt.Errorf("%s: %w", plain, err)
			}
			lost = append(lost, fmt.Sprintf("unique index %s is not unique (it lacks the partition key)", ix.name))
		}
	}
	for _, fk := range fks {
		sqlDef := fk.sql
		if layout == "month" && fk.table == "item_state_history" {
			sqlDef = `FOREIGN KEY (item_execution_id, item_execution_created_at) REFERENCES item_execution(id, created_at) ON DELETE CASCADE`
		}
		s := fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s %s`, fk.table, pq.QuoteIdentifier(fk.name), sqlDef)
		if _, err := q.ExecContext(ctx, s); err != nil {
			return "", fmt.Errorf("%s: %w", s, err)
		}
	}
	for _, tg := range triggers {
		if _, err := q.ExecContext(ctx, tg.sql); err != nil {
			lost = append(lost, fmt.Sprintf("trigger %s on %s: %v", tg.name, tg.table, err))
		}
	}
	lost = append(lost, "statement triggers on the parent do not fire for statements aimed at a partition directly")
	return strings.Join(lost, "; "), nil
}
