// Package layout converts item_execution and item_state_history to the
// opt-in partitioned layout (docs/scaling.md, section 3) and keeps its
// partitions: one per month of version 7 UUIDs, item_execution by RANGE (id)
// and item_state_history by RANGE (item_execution_id), so the history's
// foreign key is its partition key and a month goes by dropping two tables.
//
// The catalog is the record of the layout: item_execution is a partitioned
// table (relkind 'p') or it is not. Nothing else is stored.
//
// Statement triggers on a partitioned parent do not fire for a statement
// aimed at one of its partitions, so this package copies every statement
// trigger of the two parents onto each partition (a statement aimed at the
// parent fires the parent's only; one aimed at a partition fires the copy),
// and Sync refreshes the copies after a migration changes the parents'.
// Partitions carry no grants: a role that is not their owner reaches them
// only through the parents.
package layout

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// The layouts.
const (
	// Plain is the layout the migrations build: no partitioning.
	Plain = "plain"
	// Partitioned is the v7 monthly range-partitioned layout.
	Partitioned = "partitioned"
)

// The partitioned tables, parent first.
const (
	ItemExecution = "item_execution"
	History       = "item_state_history"
)

// DefaultAhead is how many months after the current one get partitions
// when nothing else is said.
const DefaultAhead = 3

// lockKey serializes partition creation and removal on one database.
const lockKey = "runledger.partitions"

// Querier is what this package runs statements on: a *sql.DB, *sql.Conn or
// *sql.Tx.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ErrPlain is returned by the partition operations on a database whose
// layout is plain.
var ErrPlain = errors.New("layout: item_execution is not partitioned (run 'runledger migrate partition' to switch)")

// Current returns the layout of the database: Partitioned when
// item_execution is a partitioned table, else Plain. It fails when
// item_execution does not exist (the migrations have not run).
func Current(ctx context.Context, q Querier) (string, error) {
	var kind sql.NullString
	err := q.QueryRowContext(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass('item_execution')`).Scan(&kind)
	switch {
	case errors.Is(err, sql.ErrNoRows) || (err == nil && !kind.Valid):
		return "", errors.New("layout: table item_execution not found: apply the migrations first")
	case err != nil:
		return "", fmt.Errorf("layout: read the layout: %w", err)
	case kind.String == "p":
		return Partitioned, nil
	default:
		return Plain, nil
	}
}

// MonthStart returns the first instant of t's month, in UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Bound returns the smallest version 7 UUID of instant t: its first 48 bits
// are t in Unix milliseconds, the rest zero. Partition bounds are these.
func Bound(t time.Time) uuid.UUID {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	return u
}

// TimeOf returns the instant in the first 48 bits of a version 7 UUID.
func TimeOf(u uuid.UUID) time.Time {
	var ms [8]byte
	copy(ms[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))).UTC()
}

// Partition is one month: a partition of item_execution and the matching
// one of item_state_history.
type Partition struct {
	Month         time.Time // the first instant of the month (UTC)
	ItemExecution string    // partition of item_execution (unqualified name)
	History       string    // partition of item_state_history (unqualified name)
}

// Name returns the partition name of table for a month: table_pYYYYMM.
func Name(table string, month time.Time) string {
	return fmt.Sprintf("%s_p%04d%02d", table, month.Year(), int(month.Month()))
}

var boundRE = regexp.MustCompile(`FROM \('([0-9a-f-]{36})'\) TO \('([0-9a-f-]{36})'\)`)

// Partitions lists the months that have an item_execution partition, oldest
// first. History is the name of the history partition of the same bounds,
// or "" when it is missing.
func Partitions(ctx context.Context, q Querier) ([]Partition, error) {
	type part struct {
		name string
		from time.Time
	}
	list := func(parent string) ([]part, error) {
		rows, err := q.QueryContext(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = to_regclass($1)`, parent)
		if err != nil {
			return nil, fmt.Errorf("layout: list partitions of %s: %w", parent, err)
		}
		defer rows.Close()
		var out []part
		for rows.Next() {
			var name, bound string
			if err := rows.Scan(&name, &bound); err != nil {
				return nil, fmt.Errorf("layout: list partitions of %s: %w", parent, err)
			}
			m := boundRE.FindStringSubmatch(bound)
			if m == nil {
				return nil, fmt.Errorf("layout: partition %s of %s has bounds %q, not a month of version 7 UUIDs", name, parent, bound)
			}
			from, err := uuid.Parse(m[1])
			if err != nil {
				return nil, fmt.Errorf("layout: partition %s: %w", name, err)
			}
			out = append(out, part{name: name, from: TimeOf(from)})
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("layout: list partitions of %s: %w", parent, err)
		}
		return out, nil
	}
	ies, err := list(ItemExecution)
	if err != nil {
		return nil, err
	}
	hs, err := list(History)
	if err != nil {
		return nil, err
	}
	byMonth := map[time.Time]string{}
	for _, h := range hs {
		byMonth[h.from] = h.name
	}
	out := make([]Partition, 0, len(ies))
	for _, p := range ies {
		out = append(out, Partition{Month: p.from, ItemExecution: p.name, History: byMonth[p.from]})
	}
	for i := 1; i < len(out); i++ { // insertion sort: a few dozen months
		for j := i; j > 0 && out[j].Month.Before(out[j-1].Month); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// schemaOf returns the quoted schema of item_execution.
func schemaOf(ctx context.Context, q Querier) (string, error) {
	var s string
	if err := q.QueryRowContext(ctx, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('item_execution')`).Scan(&s); err != nil {
		return "", fmt.Errorf("layout: find the schema of item_execution: %w", err)
	}
	return pq.QuoteIdentifier(s), nil
}

// createMonth creates the two partitions of a month (when missing) and
// copies the parents' statement triggers onto them. It reports whether it
// created anything.
func createMonth(ctx context.Context, q Querier, schema string, month time.Time) (bool, error) {
	lo, hi := Bound(month), Bound(month.AddDate(0, 1, 0))
	created := false
	for _, table := range []string{ItemExecution, History} {
		name := Name(table, month)
		var exists bool
		if err := q.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+"."+pq.QuoteIdentifier(name)).Scan(&exists); err != nil {
			return false, fmt.Errorf("layout: look for partition %s: %w", name, err)
		}
		if exists {
			continue
		}
		stmt := fmt.Sprintf(`CREATE TABLE %s.%s PARTITION OF %s.%s FOR VALUES FROM ('%s') TO ('%s')`,
			schema, pq.QuoteIdentifier(name), schema, pq.QuoteIdentifier(table), lo, hi)
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("layout: create partition %s: %w", name, err)
		}
		// No grants: only the owner reaches a partition directly.
		if _, err := q.ExecContext(ctx, fmt.Sprintf(`REVOKE ALL ON %s.%s FROM PUBLIC`, schema, pq.QuoteIdentifier(name))); err != nil {
			return false, fmt.Errorf("layout: revoke on partition %s: %w", name, err)
		}
		created = true
	}
	if created {
		if err := Sync(ctx, q); err != nil {
			return false, err
		}
	}
	return created, nil
}

// lock takes the transaction-level lock that serializes partition changes.
func lock(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey); err != nil {
		return fmt.Errorf("layout: take the partition lock: %w", err)
	}
	return nil
}

// Ensure creates the partitions of now's month and of the ahead months
// after it that are missing, in one transaction, and returns the months it
// created. It returns ErrPlain on a plain layout. Concurrent callers are
// serialized; a caller that finds everything in place creates nothing and
// takes no lock on the tables.
func Ensure(ctx context.Context, db *sql.DB, ahead int, now time.Time) ([]time.Time, error) {
	if ahead < 0 {
		ahead = 0
	}
	first := MonthStart(now)
	missing := func(q Querier) ([]time.Time, error) {
		parts, err := Partitions(ctx, q)
		if err != nil {
			return nil, err
		}
		have := map[time.Time]bool{}
		for _, p := range parts {
			have[p.Month] = p.History != ""
		}
		var out []time.Time
		for i := 0; i <= ahead; i++ {
			if m := first.AddDate(0, i, 0); !have[m] {
				out = append(out, m)
			}
		}
		return out, nil
	}
	kind, err := Current(ctx, db)
	if err != nil {
		return nil, err
	}
	if kind != Partitioned {
		return nil, ErrPlain
	}
	if m, err := missing(db); err != nil || len(m) == 0 {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("layout: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := lock(ctx, tx); err != nil {
		return nil, err
	}
	months, err := missing(tx)
	if err != nil {
		return nil, err
	}
	schema, err := schemaOf(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, m := range months {
		if _, err := createMonth(ctx, tx, schema, m); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("layout: commit partitions: %w", err)
	}
	return months, nil
}

// Sync makes every partition of item_execution and item_state_history carry
// a copy of each statement trigger of its parent, and no other statement
// trigger of its own, so that a statement aimed at a partition directly
// runs the same guards, history and counts as one aimed at the parent. Row
// triggers need nothing: PostgreSQL clones them. It is idempotent; run it
// after a migration that changes the parents' triggers (Apply does).
func Sync(ctx context.Context, q Querier) error {
	for _, parent := range []string{ItemExecution, History} {
		type trig struct{ name, def string }
		var trigs []trig
		var qualified string
		err := scanAll(ctx, q, func(rows *sql.Rows) error {
			var t trig
			if err := rows.Scan(&t.name, &t.def, &qualified); err != nil {
				return err
			}
			trigs = append(trigs, t)
			return nil
		}, `SELECT t.tgname, pg_get_triggerdef(t.oid),
				quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal AND t.tgtype & 1 = 0
			ORDER BY t.tgname`, parent)
		if err != nil {
			return fmt.Errorf("layout: read the triggers of %s: %w", parent, err)
		}
		type local struct{ part, trigger string }
		var parts []string
		var locals []local
		err = scanAll(ctx, q, func(rows *sql.Rows) error {
			var p, t string
			if err := rows.Scan(&p, &t); err != nil {
				return err
			}
			if len(parts) == 0 || parts[len(parts)-1] != p {
				parts = append(parts, p)
			}
			if t != "" {
				locals = append(locals, local{p, t})
			}
			return nil
		}, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), coalesce(t.tgname, '')
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal AND t.tgtype & 1 = 0 AND t.tgparentid = 0
			WHERE i.inhparent = to_regclass($1) ORDER BY 1, 2`, parent)
		if err != nil {
			return fmt.Errorf("layout: read the partitions of %s: %w", parent, err)
		}
		keep := map[string]bool{}
		for _, t := range trigs {
			keep[t.name] = true
		}
		for _, l := range locals {
			if keep[l.trigger] {
				continue
			}
			if _, err := q.ExecContext(ctx, fmt.Sprintf(`DROP TRIGGER %s ON %s`, pq.QuoteIdentifier(l.trigger), l.part)); err != nil {
				return fmt.Errorf("layout: drop stale trigger %s on %s: %w", l.trigger, l.part, err)
			}
		}
		for _, p := range parts {
			for _, t := range trigs {
				def, err := retarget(t.def, qualified, p)
				if err != nil {
					return err
				}
				if _, err := q.ExecContext(ctx, def); err != nil {
					return fmt.Errorf("layout: copy trigger %s onto %s: %w", t.name, p, err)
				}
			}
		}
	}
	return nil
}

// scanAll runs query on q and calls scan for each row.
func scanAll(ctx context.Context, q Querier, scan func(*sql.Rows) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// retarget turns a parent's trigger definition (as pg_get_triggerdef prints
// it) into CREATE OR REPLACE TRIGGER of the same trigger on a partition.
func retarget(def, parent, part string) (string, error) {
	on := " ON " + parent + " "
	if strings.Count(def, on) != 1 || !strings.HasPrefix(def, "CREATE TRIGGER ") {
		return "", fmt.Errorf("layout: cannot retarget trigger definition %q", def)
	}
	def = strings.Replace(def, on, " ON "+part+" ", 1)
	return "CREATE OR REPLACE TRIGGER " + strings.TrimPrefix(def, "CREATE TRIGGER "), nil
}
