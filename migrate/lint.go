package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"ariga.io/atlas/schemahcl"
	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	_ "ariga.io/atlas/sql/postgres/postgrescheck" // registers the PostgreSQL analyzers
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
	"ariga.io/atlas/sql/sqlclient"
)

// Severity tells whether a lint finding fails the lint.
type Severity string

const (
	// SeverityError fails the lint: Lint's report has Failed() == true.
	SeverityError Severity = "error"
	// SeverityWarning is reported and does not fail the lint.
	SeverityWarning Severity = "warning"
)

// Codes of the findings about directives themselves. The other
// codes are Atlas's (see Lint).
const (
	// CodeBadDirective flags a lint:ignore directive without a reason, without
	// a code, naming a code Lint does not know, or not directly above a
	// statement. It is an error and cannot be ignored.
	CodeBadDirective = "RL101"
	// CodeUnusedDirective flags a lint:ignore directive that suppressed
	// nothing: the finding it was written for is gone. It is a warning.
	CodeUnusedDirective = "RL102"
)

// IgnoreDirective is the comment that suppresses a reviewed finding:
//
//	-- lint:ignore DS103 the column was unused since v1.4; backed up in the release notes
//	ALTER TABLE "run" DROP COLUMN "legacy_state";
//
// See Lint for the rules.
const IgnoreDirective = "lint:ignore"

// NolintDirective is Atlas's own directive, which Lint reads as Atlas does:
//
//	-- the column was unused since v1.4; backed up in the release notes
//	-- atlas:nolint DS103
//	ALTER TABLE "run" DROP COLUMN "legacy_state";
//
// Its arguments are codes (DS103) or analyzer names (destructive,
// data_depend, condrop, incompatible), none meaning every analyzer. Above a
// statement it covers that statement; in the file header (the comment lines
// at the top of the file, followed by a blank line) it covers the whole file.
// Atlas takes no reason on the directive's line, so Lint takes it from the
// other lines of the same comment block, and refuses the directive without
// one. See Lint.
const NolintDirective = "atlas:nolint"

// knownAnalyzers are the names of the analyzers registered by postgrescheck.
var knownAnalyzers = map[string]bool{"destructive": true, "data_depend": true, "condrop": true, "incompatible": true}

// knownCodes are the codes of the analyzers registered by postgrescheck.
var knownCodes = map[string]bool{
	"DS101": true, "DS102": true, "DS103": true,
	"MF101": true, "MF102": true, "MF103": true, "MF104": true,
	"CD101": true,
	"BC101": true, "BC102": true,
}

// LintOptions tune Lint.
type LintOptions struct {
	// DevURL is a PostgreSQL server on which a temporary, empty dev database
	// is created and dropped. Empty means the local server.
	DevURL string
	// Latest analyzes only the last Latest files; the earlier ones are
	// replayed without analysis. 0 analyzes every file.
	Latest int
}

// Finding is one diagnostic of Lint.
type Finding struct {
	File     string   // the migration file's name
	Line     int      // the line of the statement (or directive) in the file, from 1, as Atlas reports it; 0 when about the whole file
	Pos      int      // the statement's position in the file, from 1; 0 when not tied to a statement
	Stmt     string   // the statement's text; empty when Pos is 0
	Code     string   // the check's code, such as DS103 or RL101
	Analyzer string   // the Atlas analyzer that found it (destructive, data_depend, ...); empty for RL codes
	Message  string   // what the check found
	Severity Severity // whether it fails the lint
	Reason   string   // for a suppressed finding, the directive's reason
}

// LintReport is what Lint found.
type LintReport struct {
	// Files are the analyzed files, in order.
	Files []string
	// Replayed is the number of earlier files replayed without analysis.
	Replayed int
	// Findings are the diagnostics not suppressed, by file and statement.
	Findings []Finding
	// Suppressed are the diagnostics a lint:ignore directive let through,
	// each with the directive's Reason.
	Suppressed []Finding
}

// Errors returns the number of error-level findings.
func (r *LintReport) Errors() int { return r.count(SeverityError) }

// Warnings returns the number of warning-level findings.
func (r *LintReport) Warnings() int { return r.count(SeverityWarning) }

// Failed reports whether an error-level finding remains: the lint fails.
func (r *LintReport) Failed() bool { return r.Errors() > 0 }

func (r *LintReport) count(s Severity) int {
	if r == nil {
		return 0
	}
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Lint checks the migration files of dir with Atlas's analyzers for
// PostgreSQL, the checks of `atlas migrate lint`.
//
// On one temporary dev database (created on opts.DevURL and dropped
// afterwards) it replays the files in order. The earlier files (all but the
// last opts.Latest, if set) only run; for each analyzed file it runs the
// statements one by one, inspects the schema after each, and attaches the
// difference to the statement that made it. The analyzers then judge the
// file's changes:
//
//   - destructive, error: DS101 drop schema, DS102 drop table, DS103 drop
//     column.
//   - data_depend, error: MF101 unique index on existing columns (fails on
//     duplicates), MF102 index made unique, MF103 NOT NULL column without
//     default added to an existing table (fails if it has rows), MF104
//     nullable column made NOT NULL. Atlas's default for this analyzer is a
//     warning; runledger makes it an error, as each one can fail a deploy.
//     Without a SQL parser the check cannot see a backfilling UPDATE before
//     an MF104 change: review it and ignore it.
//   - condrop, warning: CD101 drop a foreign key whose columns stay.
//   - incompatible, warning: BC101 rename table, BC102 rename column.
//     Renames are seen by inspection, so they usually show up as a drop and
//     an add (DS102/DS103) instead.
//
// A severity is the analyzer's own: an analyzer configured to error returns
// an error along with its reports. Only what Atlas inspects is seen (tables,
// columns, indexes, foreign keys, checks, ...); functions and triggers are not.
//
// A finding is suppressed by Atlas's own directive, atlas:nolint (see
// NolintDirective), in the comment block directly above its statement (no
// blank line in between) or in the file header, with the reason on another
// comment line of the block:
//
//	-- the column and its key were unused since v1.4
//	-- atlas:nolint DS103 CD101
//	ALTER TABLE "run" DROP COLUMN "legacy_engine_id";
//
// or by runledger's older form, lint:ignore, kept as an alias, with
// comma-separated codes and the reason on its line:
//
//	-- lint:ignore DS103,CD101 the column and its key were unused since v1.4
//	ALTER TABLE "run" DROP COLUMN "legacy_engine_id";
//
// Above a statement a directive applies to that statement only. A directive
// without a reason, with an unknown code or analyzer, a lint:ignore without
// a code, or a directive neither directly above a statement nor (atlas:nolint)
// in the file header is an error finding (RL101) and suppresses nothing; a
// directive (or one of its codes) that suppresses nothing is a warning
// (RL102). Findings carry the line of their statement, as Atlas reports it.
//
// Lint returns an error, not a finding, when the directory fails its
// atlas.sum, when a statement fails on the dev database, or when the dev
// database cannot be used. The report's Failed tells whether the lint fails.
func Lint(ctx context.Context, dir migrate.Dir, opts LintOptions) (*LintReport, error) {
	if opts.Latest < 0 {
		return nil, fmt.Errorf("migrate: lint: latest must be 0 (all files) or more, not %d", opts.Latest)
	}
	if dir == nil {
		return nil, errors.New("migrate: lint: no migration directory")
	}
	if err := Validate(dir); err != nil {
		return nil, err
	}
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migrate: read directory: %w", err)
	}
	analyzers, err := lintAnalyzers()
	if err != nil {
		return nil, err
	}
	start := 0
	if opts.Latest > 0 && opts.Latest < len(files) {
		start = len(files) - opts.Latest
	}
	report := &LintReport{Replayed: start}
	if len(files) == 0 {
		return report, nil
	}
	err = withDevDatabase(ctx, opts.DevURL, func(dev *sql.DB) error {
		conn, err := dev.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: lint: connect to dev database: %w", err)
		}
		defer conn.Close()
		drv, err := postgres.Open(conn)
		if err != nil {
			return fmt.Errorf("migrate: lint: open driver: %w", err)
		}
		l := &linter{
			conn:      conn,
			drv:       drv,
			dev:       &sqlclient.Client{Name: postgres.DriverName, DB: dev, Driver: drv},
			analyzers: analyzers,
		}
		for i, f := range files {
			if i < start {
				if err := l.replay(ctx, f); err != nil {
					return err
				}
				continue
			}
			found, suppressed, err := l.lintFile(ctx, f)
			if err != nil {
				return err
			}
			report.Files = append(report.Files, f.Name())
			report.Findings = append(report.Findings, found...)
			report.Suppressed = append(report.Suppressed, suppressed...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return report, nil
}

// lintAnalyzers returns the PostgreSQL analyzers, data_depend set to error.
func lintAnalyzers() ([]sqlcheck.Analyzer, error) {
	cfg := &schemahcl.Resource{
		Type: "lint",
		Children: []*schemahcl.Resource{
			{Type: "data_depend", Attrs: []*schemahcl.Attr{schemahcl.BoolAttr("error", true)}},
		},
	}
	azs, err := sqlcheck.AnalyzerFor(postgres.DriverName, cfg)
	if err != nil {
		return nil, fmt.Errorf("migrate: lint: configure analyzers: %w", err)
	}
	if len(azs) == 0 {
		return nil, errors.New("migrate: lint: no analyzers registered for postgres (built with the 'ent' tag?)")
	}
	return azs, nil
}

// linter runs files on the dev database and analyzes them.
type linter struct {
	conn      *sql.Conn
	drv       migrate.Driver
	dev       *sqlclient.Client
	analyzers []sqlcheck.Analyzer
}

func (l *linter) stmts(f migrate.File) ([]*migrate.Stmt, error) {
	stmts, err := migrate.FileStmtDecls(l.drv, f)
	if err != nil {
		return nil, fmt.Errorf("migrate: lint: %s: read statements: %w", f.Name(), err)
	}
	return stmts, nil
}

func (l *linter) exec(ctx context.Context, f migrate.File, i int, s *migrate.Stmt) error {
	if _, err := l.conn.ExecContext(ctx, s.Text); err != nil {
		return fmt.Errorf("migrate: lint: %s: statement %d failed on the dev database: %w\n\t%s", f.Name(), i+1, err, s.Text)
	}
	return nil
}

func (l *linter) inspect(ctx context.Context, f migrate.File) (*schema.Realm, error) {
	r, err := l.drv.InspectRealm(ctx, &schema.InspectRealmOption{})
	if err != nil {
		return nil, fmt.Errorf("migrate: lint: %s: inspect dev database: %w", f.Name(), err)
	}
	return r, nil
}

// replay runs the statements of f without analysis.
func (l *linter) replay(ctx context.Context, f migrate.File) error {
	stmts, err := l.stmts(f)
	if err != nil {
		return err
	}
	for i, s := range stmts {
		if err := l.exec(ctx, f, i, s); err != nil {
			return err
		}
	}
	return nil
}

// lintFile runs f statement by statement, collects the changes each made,
// and runs the analyzers on them.
func (l *linter) lintFile(ctx context.Context, f migrate.File) (found, suppressed []Finding, err error) {
	stmts, err := l.stmts(f)
	if err != nil {
		return nil, nil, err
	}
	from, err := l.inspect(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	prev := from
	var changes []*sqlcheck.Change
	for i, s := range stmts {
		if err := l.exec(ctx, f, i, s); err != nil {
			return nil, nil, err
		}
		cur, err := l.inspect(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		diff, err := l.drv.RealmDiff(prev, cur)
		if err != nil {
			return nil, nil, fmt.Errorf("migrate: lint: %s: statement %d: compute changes: %w", f.Name(), i+1, err)
		}
		if len(diff) > 0 {
			changes = append(changes, &sqlcheck.Change{Changes: diff, Stmt: s})
		}
		prev = cur
	}
	sum, err := l.drv.RealmDiff(from, prev)
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: lint: %s: compute changes: %w", f.Name(), err)
	}
	pass := &sqlcheck.Pass{
		File: &sqlcheck.File{File: f, Changes: changes, Sum: sum, From: from, To: prev},
		Dev:  l.dev,
	}
	index := make(map[int]int, len(stmts)) // statement offset -> position from 1
	for i, s := range stmts {
		index[s.Pos] = i + 1
	}
	var raw []Finding
	for _, az := range l.analyzers {
		var diags []sqlcheck.Diagnostic
		pass.Reporter = sqlcheck.ReportWriterFunc(func(r sqlcheck.Report) {
			diags = append(diags, r.Diagnostics...)
		})
		sev := SeverityWarning
		if err := az.Analyze(ctx, pass); err != nil {
			if len(diags) == 0 {
				return nil, nil, fmt.Errorf("migrate: lint: %s: analyzer %s: %w", f.Name(), analyzerName(az), err)
			}
			// An analyzer configured to error reports, then returns an error.
			sev = SeverityError
		}
		for _, d := range diags {
			fd := Finding{File: f.Name(), Code: d.Code, Analyzer: analyzerName(az), Message: d.Text, Severity: sev}
			if p, ok := index[d.Pos]; ok {
				fd.Pos, fd.Stmt, fd.Line = p, stmts[p-1].Text, lineOf(string(f.Bytes()), d.Pos)
			}
			raw = append(raw, fd)
		}
	}
	found, suppressed = applyDirectives(f, stmts, raw)
	sortFindings(found)
	sortFindings(suppressed)
	return found, suppressed, nil
}

func analyzerName(az sqlcheck.Analyzer) string {
	if n, ok := az.(sqlcheck.NamedAnalyzer); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", az)
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Line != fs[j].Line {
			return fs[i].Line < fs[j].Line
		}
		return fs[i].Code < fs[j].Code
	})
}

// directive is one parsed lint:ignore or atlas:nolint comment.
type directive struct {
	form      string   // IgnoreDirective or NolintDirective
	codes     []string // the codes it names
	analyzers []string // the analyzers it names (atlas:nolint only)
	all       bool     // atlas:nolint with no argument: every analyzer
	reason    string
	bad       string // why the directive is invalid; empty when valid
	used      map[string]bool
}

// targets are the codes and analyzers d names, "" for all.
func (d *directive) targets() []string {
	if d.all {
		return []string{""}
	}
	return append(append([]string{}, d.codes...), d.analyzers...)
}

// match returns the target of d that covers fd.
func (d *directive) match(fd Finding) (string, bool) {
	switch {
	case d.bad != "":
		return "", false
	case d.all:
		return "", true
	case contains(d.codes, fd.Code):
		return fd.Code, true
	case fd.Analyzer != "" && contains(d.analyzers, fd.Analyzer):
		return fd.Analyzer, true
	}
	return "", false
}

// parseDirectiveLine parses line (a comment line, with its "--") if it is a
// lint:ignore or atlas:nolint directive. An atlas:nolint directive's reason
// is set by the caller, from the comment lines around it.
func parseDirectiveLine(line string) (*directive, bool) {
	line = strings.TrimSpace(line)
	rest, ok := strings.CutPrefix(line, "--")
	if !ok {
		return nil, false
	}
	rest = strings.TrimSpace(rest)
	form := ""
	for _, f := range []string{IgnoreDirective, NolintDirective} {
		if r, ok := strings.CutPrefix(rest, f); ok && (r == "" || r[0] == ' ' || r[0] == '\t') {
			form, rest = f, r
			break
		}
	}
	if form == "" {
		return nil, false
	}
	d := &directive{form: form, used: map[string]bool{}}
	fields := strings.Fields(rest)
	if form == NolintDirective {
		if len(fields) == 0 {
			d.all = true
		}
		for _, f := range fields {
			for _, c := range strings.Split(f, ",") {
				switch {
				case c == "":
				case knownCodes[strings.ToUpper(c)]:
					d.codes = append(d.codes, strings.ToUpper(c))
				case knownAnalyzers[strings.ToLower(c)]:
					d.analyzers = append(d.analyzers, strings.ToLower(c))
				default:
					d.bad = fmt.Sprintf("names %q, neither a code nor an analyzer (write: -- atlas:nolint [CODE|ANALYZER ...], and the reason on a comment line of its own)", c)
					return d, true
				}
			}
		}
		return d, true
	}
	if len(fields) == 0 {
		d.bad = "names no code and gives no reason (write: -- lint:ignore CODE reason)"
		return d, true
	}
	for _, c := range strings.Split(fields[0], ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		switch {
		case c == "":
			continue
		case !knownCodes[c]:
			d.bad = fmt.Sprintf("names unknown code %q", c)
			return d, true
		}
		d.codes = append(d.codes, c)
	}
	if len(d.codes) == 0 {
		d.bad = "names no code (write: -- lint:ignore CODE reason)"
		return d, true
	}
	d.reason = strings.Join(fields[1:], " ")
	if d.reason == "" {
		d.bad = fmt.Sprintf("for %s gives no reason (write: -- lint:ignore %s why this change is safe)", strings.Join(d.codes, ","), strings.Join(d.codes, ","))
	}
	return d, true
}

// blockDirectives parses the directives of a comment block (lines with
// their "--"). An atlas:nolint directive takes its reason from the block's
// other comment lines and is bad without one.
func blockDirectives(lines []string) []*directive {
	var (
		ds   []*directive
		text []string
	)
	for _, line := range lines {
		if d, ok := parseDirectiveLine(line); ok {
			ds = append(ds, d)
			continue
		}
		if t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "--")); t != "" {
			text = append(text, t)
		}
	}
	for _, d := range ds {
		if d.form == NolintDirective && d.bad == "" {
			d.reason = strings.Join(text, " ")
			if d.reason == "" {
				d.bad = "gives no reason: say why on a comment line right above or below it"
			}
		}
	}
	return ds
}

// statementDirectives returns the directives in the comment block attached
// to s.
func statementDirectives(s *migrate.Stmt) []*directive {
	var lines []string
	for _, c := range s.Comments {
		lines = append(lines, strings.Split(strings.TrimRight(c, "\n"), "\n")...)
	}
	return blockDirectives(lines)
}

// fileHeader returns the file's header: the comment lines at its top when a
// blank line (or the end of the file) follows them, as Atlas reads file
// directives. Comments directly above the first statement are that
// statement's, not the header.
func fileHeader(text string) (lines []string) {
	rest := text
	for strings.HasPrefix(rest, "--") {
		line, after, found := strings.Cut(rest, "\n")
		lines = append(lines, line)
		if !found {
			return lines
		}
		rest = after
	}
	if len(lines) == 0 || (rest != "" && !strings.HasPrefix(rest, "\n") && !strings.HasPrefix(rest, "\r\n")) {
		return nil
	}
	return lines
}

// lineOf returns the line, from 1, of byte offset off in text.
func lineOf(text string, off int) int {
	if off > len(text) {
		off = len(text)
	}
	return strings.Count(text[:off], "\n") + 1
}

// applyDirectives splits raw into the findings that stand and the ones the
// directives suppress (above a statement: that statement; atlas:nolint in
// the file header: the whole file), and adds the findings about directives.
func applyDirectives(f migrate.File, stmts []*migrate.Stmt, raw []Finding) (found, suppressed []Finding) {
	text := string(f.Bytes())
	header := fileHeader(text)
	var fileDs []*directive
	for _, d := range blockDirectives(header) {
		if d.form != NolintDirective {
			continue // a lint:ignore in the header is stray: reported below
		}
		fileDs = append(fileDs, d)
		if d.bad != "" {
			found = append(found, Finding{File: f.Name(), Line: 1, Code: CodeBadDirective, Severity: SeverityError,
				Message: d.form + " directive in the file header " + d.bad})
		}
	}
	byStmt := make(map[int][]*directive)
	for i, s := range stmts {
		for _, d := range statementDirectives(s) {
			byStmt[i+1] = append(byStmt[i+1], d)
			if d.bad != "" {
				found = append(found, Finding{
					File: f.Name(), Pos: i + 1, Line: lineOf(text, s.Pos), Stmt: s.Text, Code: CodeBadDirective, Severity: SeverityError,
					Message: d.form + " directive " + d.bad,
				})
			}
		}
	}
	for _, fd := range raw {
		var (
			by  *directive
			key string
		)
		candidates := append(append([]*directive{}, byStmt[fd.Pos]...), fileDs...)
		for _, d := range candidates {
			if k, ok := d.match(fd); ok {
				by, key = d, k
				break
			}
		}
		if by == nil {
			found = append(found, fd)
			continue
		}
		by.used[key] = true
		fd.Reason = by.reason
		suppressed = append(suppressed, fd)
	}
	unused := func(d *directive, fd Finding) {
		for _, t := range d.targets() {
			if d.used[t] {
				continue
			}
			what := d.form + " " + t
			if t == "" {
				what = d.form
			}
			fd.Code, fd.Severity = CodeUnusedDirective, SeverityWarning
			fd.Message = fmt.Sprintf("%s suppresses nothing here: remove it", strings.TrimSpace(what))
			found = append(found, fd)
		}
	}
	for pos, ds := range byStmt {
		for _, d := range ds {
			if d.bad == "" {
				unused(d, Finding{File: f.Name(), Pos: pos, Line: lineOf(text, stmts[pos-1].Pos), Stmt: stmts[pos-1].Text})
			}
		}
	}
	for _, d := range fileDs {
		if d.bad == "" {
			unused(d, Finding{File: f.Name(), Line: 1})
		}
	}
	found = append(found, strayDirectives(f, stmts, len(header))...)
	return found, suppressed
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// strayDirectives reports directive lines that are neither in the file
// header (atlas:nolint only; the first headerLines lines) nor in the comment
// block attached to the next statement (a blank line in between detaches a
// comment block), since they would silently do nothing.
func strayDirectives(f migrate.File, stmts []*migrate.Stmt, headerLines int) []Finding {
	var found []Finding
	text := string(f.Bytes())
	off := 0
	for n, line := range strings.SplitAfter(text, "\n") {
		lineOff := off
		off += len(line)
		d, ok := parseDirectiveLine(line)
		if !ok || (n < headerLines && d.form == NolintDirective) {
			continue
		}
		next := -1
		inside := false
		for i, s := range stmts {
			if lineOff >= s.Pos && lineOff < s.Pos+len(s.Text) {
				inside = true
				break
			}
			if s.Pos > lineOff {
				next = i
				break
			}
		}
		if inside {
			continue
		}
		if next >= 0 && attached(stmts[next], strings.TrimSpace(line)) {
			continue
		}
		found = append(found, Finding{
			File: f.Name(), Line: n + 1, Code: CodeBadDirective, Severity: SeverityError,
			Message: fmt.Sprintf("%s directive is not directly above a statement (no blank line allowed in between) nor an atlas:nolint in the file header, so it suppresses nothing", d.form),
		})
	}
	return found
}

func attached(s *migrate.Stmt, line string) bool {
	for _, c := range s.Comments {
		for _, l := range strings.Split(c, "\n") {
			if strings.TrimSpace(l) == line {
				return true
			}
		}
	}
	return false
}
