package layout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// ConvertResult is what Convert did.
type ConvertResult struct {
	// Already is set when the database was partitioned before the call;
	// nothing else was done then.
	Already bool
	// Months are the months that got partitions, oldest first.
	Months []time.Time
	// ItemExecutions and History count the rows moved into the partitions.
	ItemExecutions, History int64
}

// maxMonths bounds the partitions Convert makes for existing data.
const maxMonths = 240

// Convert turns item_execution and item_state_history of a migrated
// database into the partitioned layout inside tx, which the caller commits:
// partitioned parents with the same columns, defaults, CHECKs, comments,
// indexes, foreign keys, triggers, owner and grants; one partition per month
// from the oldest existing item execution to ahead months after now's; the
// rows moved into them. It takes ACCESS EXCLUSIVE locks on both tables and
// rewrites them: on a large database, run it in a maintenance window.
//
// The deviations from the plain layout (docs/scaling.md, section 3): the
// history's primary key is (id, item_execution_id); a unique index that
// lacks the partition key (itemexecution_run_id_item_id) becomes a plain
// index; every item_execution id must be a version 7 UUID (Convert refuses
// a database holding another kind), and an insert whose id falls in no
// partition fails. On a database already partitioned it does nothing and
// reports Already.
func Convert(ctx context.Context, tx *sql.Tx, ahead int, now time.Time) (*ConvertResult, error) {
	kind, err := Current(ctx, tx)
	if err != nil {
		return nil, err
	}
	if kind == Partitioned {
		return &ConvertResult{Already: true}, nil
	}
	if ahead < 0 {
		ahead = 0
	}
	if err := lock(ctx, tx); err != nil {
		return nil, err
	}
	schema, err := schemaOf(ctx, tx)
	if err != nil {
		return nil, err
	}
	qual := func(name string) string { return schema + "." + pq.QuoteIdentifier(name) }
	exec := func(what, stmt string, args ...any) error {
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return fmt.Errorf("layout: %s: %w", what, err)
		}
		return nil
	}
	if err := exec("lock the tables", `LOCK TABLE `+qual(ItemExecution)+`, `+qual(History)+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return nil, err
	}

	// The rows decide the first month; every id must be version 7.
	var bad int64
	var minID, maxID uuid.NullUUID
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+qual(ItemExecution)+` WHERE substr(id::text, 15, 1) <> '7'),
		(SELECT id FROM `+qual(ItemExecution)+` ORDER BY id LIMIT 1), (SELECT id FROM `+qual(ItemExecution)+` ORDER BY id DESC LIMIT 1)`).Scan(&bad, &minID, &maxID); err != nil {
		return nil, fmt.Errorf("layout: read item_execution ids: %w", err)
	}
	if bad > 0 {
		return nil, fmt.Errorf("layout: %d item executions have ids that are not version 7 UUIDs, so no month partition can hold them: purge their runs first", bad)
	}
	first, last := MonthStart(now), MonthStart(now).AddDate(0, ahead, 0)
	if minID.Valid {
		if m := MonthStart(TimeOf(minID.UUID)); m.Before(first) {
			first = m
		}
		if m := MonthStart(TimeOf(maxID.UUID)); m.After(last) {
			last = m
		}
	}
	var months []time.Time
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		months = append(months, m)
		if len(months) > maxMonths {
			return nil, fmt.Errorf("layout: the item executions span more than %d months (%s to %s): purge the oldest runs first", maxMonths, first.Format("2006-01"), last.Format("2006-01"))
		}
	}

	// What to re-create, read before the old tables go.
	type def struct {
		table, name, sql string
		uniqueNoKey      bool
	}
	list := func(what, query string) ([]def, error) {
		rows, err := tx.QueryContext(ctx, query, qual(ItemExecution), qual(History))
		if err != nil {
			return nil, fmt.Errorf("layout: read %s: %w", what, err)
		}
		defer rows.Close()
		var out []def
		for rows.Next() {
			var d def
			if err := rows.Scan(&d.table, &d.name, &d.sql, &d.uniqueNoKey); err != nil {
				return nil, fmt.Errorf("layout: read %s: %w", what, err)
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("layout: read %s: %w", what, err)
		}
		return out, nil
	}
	// A unique index must include the partition key: attribute 1 is id on
	// item_execution, item_execution_id's number is looked up for history.
	indexes, err := list("indexes", `SELECT c.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
			i.indisunique AND NOT (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = i.indrelid
				AND a.attname = CASE WHEN c.relname = 'item_execution' THEN 'id' ELSE 'item_execution_id' END) = ANY (i.indkey)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		WHERE i.indrelid IN ($1::regclass, $2::regclass) AND NOT i.indisprimary
		AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('u', 'x'))
		ORDER BY 2`)
	if err != nil {
		return nil, err
	}
	// Foreign keys of the two tables and to them, re-added on the new tables.
	fks, err := list("foreign keys", `SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), false
		FROM pg_constraint WHERE contype = 'f' AND (conrelid IN ($1::regclass, $2::regclass) OR confrelid IN ($1::regclass, $2::regclass))
		ORDER BY conrelid::regclass::text DESC, conname`)
	if err != nil {
		return nil, err
	}
	for _, fk := range fks {
		if fk.table != ItemExecution && fk.table != History && fk.table != qual(ItemExecution) && fk.table != qual(History) {
			return nil, fmt.Errorf("layout: table %s has foreign key %s to item_execution or item_state_history: only item_state_history may (drop it first)", fk.table, fk.name)
		}
	}
	triggers, err := list("triggers", `SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), false
		FROM pg_trigger WHERE tgrelid IN ($1::regclass, $2::regclass) AND NOT tgisinternal ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	var other int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid IN ($1::regclass, $2::regclass) AND contype IN ('u', 'x')`, qual(ItemExecution), qual(History)).Scan(&other); err != nil {
		return nil, fmt.Errorf("layout: read constraints: %w", err)
	}
	if other > 0 {
		return nil, errors.New("layout: item_execution or item_state_history has a UNIQUE or EXCLUDE constraint the migrations did not make: drop it first")
	}
	var owner string
	var grants []string
	err = scanAll(ctx, tx, func(rows *sql.Rows) error {
		var table, o, g string
		if err := rows.Scan(&table, &o, &g); err != nil {
			return err
		}
		if owner != "" && o != owner {
			return fmt.Errorf("item_execution and item_state_history have different owners (%s, %s)", owner, o)
		}
		owner = o
		if g != "" {
			grants = append(grants, strings.Split(g, ";")...)
		}
		return nil
	}, `SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner),
			coalesce(string_agg(format('GRANT %s ON %s TO %s%s', a.privilege_type, c.oid::regclass::text,
				CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
				CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), ';') FILTER (WHERE a.privilege_type IS NOT NULL), '')
		FROM pg_class c LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
		WHERE c.oid IN ($1::regclass, $2::regclass) GROUP BY 1, 2`, qual(ItemExecution), qual(History))
	if err != nil {
		return nil, fmt.Errorf("layout: read owner and grants: %w", err)
	}

	// The new parents beside the old tables, the partitions, the rows.
	const like = ` INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING STATISTICS INCLUDING GENERATED`
	oldIE, oldH := qual("runledger_old_"+ItemExecution), qual("runledger_old_"+History)
	for _, s := range []string{
		`ALTER TABLE ` + qual(History) + ` RENAME TO ` + pq.QuoteIdentifier("runledger_old_"+History),
		`ALTER TABLE ` + qual(ItemExecution) + ` RENAME TO ` + pq.QuoteIdentifier("runledger_old_"+ItemExecution),
		`CREATE TABLE ` + qual(ItemExecution) + ` (LIKE ` + oldIE + like + `) PARTITION BY RANGE (id)`,
		`CREATE TABLE ` + qual(History) + ` (LIKE ` + oldH + like + `) PARTITION BY RANGE (item_execution_id)`,
	} {
		if err := exec("create the partitioned tables", s); err != nil {
			return nil, err
		}
	}
	for _, m := range months {
		if _, err := createMonth(ctx, tx, schema, m); err != nil {
			return nil, err
		}
	}
	res := &ConvertResult{Months: months}
	r, err := tx.ExecContext(ctx, `INSERT INTO `+qual(ItemExecution)+` SELECT * FROM `+oldIE)
	if err != nil {
		return nil, fmt.Errorf("layout: move item executions: %w", err)
	}
	res.ItemExecutions, _ = r.RowsAffected()
	if r, err = tx.ExecContext(ctx, `INSERT INTO `+qual(History)+` SELECT * FROM `+oldH); err != nil {
		return nil, fmt.Errorf("layout: move history: %w", err)
	}
	res.History, _ = r.RowsAffected()
	if err := exec("drop the old tables", `DROP TABLE `+oldH+`, `+oldIE); err != nil {
		return nil, err
	}

	// Keys, indexes, foreign keys, triggers, owner and grants.
	if err := exec("add item_execution's primary key", `ALTER TABLE `+qual(ItemExecution)+` ADD CONSTRAINT item_execution_pkey PRIMARY KEY (id)`); err != nil {
		return nil, err
	}
	if err := exec("add item_state_history's primary key", `ALTER TABLE `+qual(History)+` ADD CONSTRAINT item_state_history_pkey PRIMARY KEY (id, item_execution_id)`); err != nil {
		return nil, err
	}
	for _, ix := range indexes {
		s := ix.sql
		if ix.uniqueNoKey {
			s = strings.Replace(s, "CREATE UNIQUE INDEX ", "CREATE INDEX ", 1)
		}
		if err := exec("create index "+ix.name, s); err != nil {
			return nil, err
		}
	}
	for _, fk := range fks {
		if err := exec("add foreign key "+fk.name, fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s %s`, fk.table, pq.QuoteIdentifier(fk.name), fk.sql)); err != nil {
			return nil, err
		}
	}
	for _, tg := range triggers {
		if err := exec("create trigger "+tg.name, tg.sql); err != nil {
			return nil, err
		}
	}
	if err := Sync(ctx, tx); err != nil {
		return nil, err
	}
	var me string
	if err := tx.QueryRowContext(ctx, `SELECT current_user`).Scan(&me); err != nil {
		return nil, fmt.Errorf("layout: read current_user: %w", err)
	}
	if owner != "" && owner != me {
		parts, err := Partitions(ctx, tx)
		if err != nil {
			return nil, err
		}
		tables := []string{qual(ItemExecution), qual(History)}
		for _, p := range parts {
			tables = append(tables, qual(p.ItemExecution), qual(p.History))
		}
		for _, t := range tables {
			if err := exec("give "+t+" to its owner", `ALTER TABLE `+t+` OWNER TO `+pq.QuoteIdentifier(owner)); err != nil {
				return nil, err
			}
		}
	}
	for _, g := range grants { // read before the rename: they name the new tables
		if err := exec("restore grants", g); err != nil {
			return nil, err
		}
	}
	return res, nil
}
