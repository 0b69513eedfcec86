package migrate_test

import (
	"context"
	"testing"

	amigrate "ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/dbtest"
	"github.com/runledger/runledger/migrate"
)

// lintBase is the first file of every crafted directory: the schema the
// later file changes.
const lintBase = `CREATE TABLE "owner" ("id" bigint NOT NULL, "name" text NOT NULL, PRIMARY KEY ("id"));
CREATE TABLE "pet" ("id" bigint NOT NULL, "name" text NULL, "nick" text NULL, "owner_id" bigint NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "pet_owner" FOREIGN KEY ("owner_id") REFERENCES "owner" ("id"));
CREATE TABLE "toy" ("id" bigint NOT NULL, PRIMARY KEY ("id"));
`

// lintDir returns a hashed in-memory directory holding lintBase and, after
// it, a file with the given body.
func lintDir(t *testing.T, body string) *amigrate.MemDir {
	t.Helper()
	mem := &amigrate.MemDir{}
	require.NoError(t, mem.WriteFile("20260101000000_base.sql", []byte(lintBase)))
	require.NoError(t, mem.WriteFile("20260102000000_change.sql", []byte(body)))
	require.NoError(t, migrate.Hash(mem))
	return mem
}

func lint(t *testing.T, dir amigrate.Dir, latest int) *migrate.LintReport {
	t.Helper()
	rep, err := migrate.Lint(context.Background(), dir, migrate.LintOptions{DevURL: dbtest.ServerURL(), Latest: latest})
	require.NoError(t, err)
	return rep
}

func codes(fs []migrate.Finding) []string {
	var cs []string
	for _, f := range fs {
		cs = append(cs, f.Code)
	}
	return cs
}

func TestLintFindsCraftedChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stmt, code string
		severity         migrate.Severity
	}{
		{"drop table", `DROP TABLE "toy";`, "DS102", migrate.SeverityError},
		{"drop column", `ALTER TABLE "pet" DROP COLUMN "nick";`, "DS103", migrate.SeverityError},
		{"add not null column", `ALTER TABLE "pet" ADD COLUMN "age" integer NOT NULL;`, "MF103", migrate.SeverityError},
		{"add unique index", `CREATE UNIQUE INDEX "pet_name" ON "pet" ("name");`, "MF101", migrate.SeverityError},
		{"drop foreign key", `ALTER TABLE "pet" DROP CONSTRAINT "pet_owner";`, "CD101", migrate.SeverityWarning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A harmless statement first: the finding must name statement 2.
			body := "CREATE TABLE \"audit\" (\"id\" bigint NOT NULL, PRIMARY KEY (\"id\"));\n" + tc.stmt + "\n"
			rep := lint(t, lintDir(t, body), 0)
			require.Equal(t, []string{"20260101000000_base.sql", "20260102000000_change.sql"}, rep.Files)
			require.Equal(t, []string{tc.code}, codes(rep.Findings), "%+v", rep.Findings)
			f := rep.Findings[0]
			require.Equal(t, "20260102000000_change.sql", f.File)
			require.Equal(t, 2, f.Pos)
			require.Equal(t, tc.stmt, f.Stmt)
			require.Equal(t, tc.severity, f.Severity)
			require.NotEmpty(t, f.Message)
			require.Equal(t, tc.severity == migrate.SeverityError, rep.Failed())
		})
	}
}

func TestLintNewTableIsNotDataDependent(t *testing.T) {
	t.Parallel()
	// A NOT NULL column and a unique index on a table made in the same file
	// risk nothing.
	body := `CREATE TABLE "vet" ("id" bigint NOT NULL, "name" text NULL, PRIMARY KEY ("id"));
ALTER TABLE "vet" ADD COLUMN "license" text NOT NULL;
CREATE UNIQUE INDEX "vet_name" ON "vet" ("name");
`
	rep := lint(t, lintDir(t, body), 0)
	require.Empty(t, rep.Findings)
	require.False(t, rep.Failed())
}

func TestLintOurMigrationsClean(t *testing.T) {
	t.Parallel()
	dir, err := migrate.Embedded()
	require.NoError(t, err)
	rep := lint(t, dir, 0)
	files, err := dir.Files()
	require.NoError(t, err)
	require.Len(t, rep.Files, len(files))
	require.Empty(t, rep.Findings)
	// The one reviewed exception: automation_id becomes NOT NULL after the
	// file before it filled every row.
	require.Len(t, rep.Suppressed, 1)
	require.Equal(t, "MF104", rep.Suppressed[0].Code)
	require.Contains(t, rep.Suppressed[0].File, "_item_execution_automation_index.sql")
	require.False(t, rep.Failed())
}

func TestLintLatestSkipsEarlierFiles(t *testing.T) {
	t.Parallel()
	mem := lintDir(t, `DROP TABLE "toy";`+"\n")
	require.NoError(t, mem.WriteFile("20260103000000_more.sql", []byte(`ALTER TABLE "pet" DROP COLUMN "nick";`+"\n")))
	require.NoError(t, migrate.Hash(mem))

	rep := lint(t, mem, 1)
	require.Equal(t, 2, rep.Replayed)
	require.Equal(t, []string{"20260103000000_more.sql"}, rep.Files)
	require.Equal(t, []string{"DS103"}, codes(rep.Findings))

	rep = lint(t, mem, 5) // more than there are: all files
	require.Equal(t, 0, rep.Replayed)
	require.Equal(t, []string{"DS102", "DS103"}, codes(rep.Findings))
}

func TestLintIgnoreWithReason(t *testing.T) {
	t.Parallel()
	body := `CREATE TABLE "audit" ("id" bigint NOT NULL, PRIMARY KEY ("id"));
-- The nickname was never shown anywhere; checked empty in production.
-- lint:ignore DS103 nick is unused since v1.4 and empty in production
ALTER TABLE "pet" DROP COLUMN "nick";
DROP TABLE "toy";
`
	rep := lint(t, lintDir(t, body), 1)
	// The directive covers its own statement only: DROP TABLE still fails.
	require.Equal(t, []string{"DS102"}, codes(rep.Findings))
	require.Equal(t, 3, rep.Findings[0].Pos)
	require.Len(t, rep.Suppressed, 1)
	s := rep.Suppressed[0]
	require.Equal(t, "DS103", s.Code)
	require.Equal(t, 2, s.Pos)
	require.Equal(t, "nick is unused since v1.4 and empty in production", s.Reason)

	body = `-- lint:ignore DS103,CD101 reviewed: the owner link moves to a join table
ALTER TABLE "pet" DROP CONSTRAINT "pet_owner", DROP COLUMN "nick";
`
	rep = lint(t, lintDir(t, body), 1)
	require.Empty(t, rep.Findings)
	require.ElementsMatch(t, []string{"DS103", "CD101"}, codes(rep.Suppressed))
	require.False(t, rep.Failed())
}

func TestLintIgnoreWithoutReasonFails(t *testing.T) {
	t.Parallel()
	body := `-- lint:ignore DS103
ALTER TABLE "pet" DROP COLUMN "nick";
`
	rep := lint(t, lintDir(t, body), 1)
	require.ElementsMatch(t, []string{migrate.CodeBadDirective, "DS103"}, codes(rep.Findings))
	require.Empty(t, rep.Suppressed)
	require.True(t, rep.Failed())
	for _, f := range rep.Findings {
		require.Equal(t, migrate.SeverityError, f.Severity)
		require.Equal(t, 1, f.Pos)
	}
}

func TestLintBadDirectives(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"no code", "-- lint:ignore\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}},
		{"unknown code", "-- lint:ignore DS999 typo\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}},
		{"detached by a blank line", "-- lint:ignore DS102 reviewed\n\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}},
		{"after the last statement", "DROP TABLE \"toy\";\n-- lint:ignore DS102 reviewed\n", []string{migrate.CodeBadDirective, "DS102"}},
		{"suppresses nothing", "-- lint:ignore DS102 reviewed\nALTER TABLE \"pet\" DROP COLUMN \"nick\";\n", []string{migrate.CodeUnusedDirective, "DS103"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := lint(t, lintDir(t, tc.body), 1)
			require.ElementsMatch(t, tc.want, codes(rep.Findings), "%+v", rep.Findings)
			require.True(t, rep.Failed())
		})
	}
}

func TestLintUnusedDirectiveIsAWarning(t *testing.T) {
	t.Parallel()
	body := "-- lint:ignore DS102 reviewed\nCREATE TABLE \"vet\" (\"id\" bigint NOT NULL, PRIMARY KEY (\"id\"));\n"
	rep := lint(t, lintDir(t, body), 1)
	require.Equal(t, []string{migrate.CodeUnusedDirective}, codes(rep.Findings))
	require.Equal(t, migrate.SeverityWarning, rep.Findings[0].Severity)
	require.False(t, rep.Failed())
	require.Equal(t, 1, rep.Warnings())
	require.Equal(t, 0, rep.Errors())
}

func TestLintErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := migrate.LintOptions{DevURL: dbtest.ServerURL()}

	_, err := migrate.Lint(ctx, lintDir(t, "SELECT 1;\n"), migrate.LintOptions{DevURL: opts.DevURL, Latest: -1})
	require.ErrorContains(t, err, "latest")

	_, err = migrate.Lint(ctx, nil, opts)
	require.Error(t, err)

	// A file edited after hashing is refused.
	mem := lintDir(t, "SELECT 1;\n")
	require.NoError(t, mem.WriteFile("20260102000000_change.sql", []byte("SELECT 2;\n")))
	_, err = migrate.Lint(ctx, mem, opts)
	require.ErrorIs(t, err, amigrate.ErrChecksumMismatch)

	// A statement that fails on the dev database names its file and position.
	_, err = migrate.Lint(ctx, lintDir(t, "SELECT 1;\nDROP TABLE \"nope\";\n"), opts)
	require.ErrorContains(t, err, "20260102000000_change.sql: statement 2")

	// An empty directory has nothing to lint.
	empty := &amigrate.MemDir{}
	require.NoError(t, migrate.Hash(empty))
	rep, err := migrate.Lint(ctx, empty, opts)
	require.NoError(t, err)
	require.Empty(t, rep.Files)
	require.False(t, rep.Failed())
}

func TestLintAtlasNolint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body     string
		found, ignored []string
		reason         string
	}{
		{"code", "-- nick was never shown\n-- atlas:nolint DS103\nALTER TABLE \"pet\" DROP COLUMN \"nick\";\n", nil, []string{"DS103"}, "nick was never shown"},
		{"codes, reason below", "-- atlas:nolint DS103 CD101\n-- the owner link moves to a join table\nALTER TABLE \"pet\" DROP CONSTRAINT \"pet_owner\", DROP COLUMN \"nick\";\n", nil, []string{"CD101", "DS103"}, "the owner link moves to a join table"},
		{"analyzer", "-- toy was never used\n-- atlas:nolint destructive\nDROP TABLE \"toy\";\n", nil, []string{"DS102"}, "toy was never used"},
		{"every analyzer", "-- reviewed in #12\n-- atlas:nolint\nDROP TABLE \"toy\";\n", nil, []string{"DS102"}, "reviewed in #12"},
		{"file header", "-- atlas:nolint DS102\n-- toy is gone for good\n\nCREATE TABLE \"audit\" (\"id\" bigint NOT NULL, PRIMARY KEY (\"id\"));\nDROP TABLE \"toy\";\n", nil, []string{"DS102"}, "toy is gone for good"},
		{"file header covers its codes only", "-- atlas:nolint DS102\n-- toy is gone for good\n\nDROP TABLE \"toy\";\nALTER TABLE \"pet\" DROP COLUMN \"nick\";\n", []string{"DS103"}, []string{"DS102"}, "toy is gone for good"},
		{"no reason", "-- atlas:nolint DS102\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}, nil, ""},
		{"unknown name", "-- reviewed\n-- atlas:nolint frobnicate\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}, nil, ""},
		{"suppresses nothing", "-- reviewed\n-- atlas:nolint DS102\nALTER TABLE \"pet\" DROP COLUMN \"nick\";\n", []string{migrate.CodeUnusedDirective, "DS103"}, nil, ""},
		{"lint:ignore is not a header directive", "-- lint:ignore DS102 toy was never used\n\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}, nil, ""},
		{"detached by a blank line", "CREATE TABLE \"audit\" (\"id\" bigint NOT NULL, PRIMARY KEY (\"id\"));\n\n-- reviewed\n-- atlas:nolint DS102\n\nDROP TABLE \"toy\";\n", []string{migrate.CodeBadDirective, "DS102"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := lint(t, lintDir(t, tc.body), 1)
			require.ElementsMatch(t, tc.found, codes(rep.Findings), "%+v", rep.Findings)
			require.ElementsMatch(t, tc.ignored, codes(rep.Suppressed), "%+v", rep.Suppressed)
			for _, s := range rep.Suppressed {
				require.Equal(t, tc.reason, s.Reason)
			}
		})
	}
}

func TestLintReportsLines(t *testing.T) {
	t.Parallel()
	body := `-- A change in three statements.

CREATE TABLE "audit" (
  "id" bigint NOT NULL,
  PRIMARY KEY ("id")
);

-- lint:ignore DS103 nick is unused since v1.4
ALTER TABLE "pet" DROP COLUMN "nick";
DROP TABLE "toy";
`
	rep := lint(t, lintDir(t, body), 1)
	require.Len(t, rep.Findings, 1)
	require.Equal(t, "DS102", rep.Findings[0].Code)
	require.Equal(t, 10, rep.Findings[0].Line)
	require.Equal(t, 3, rep.Findings[0].Pos)
	require.Equal(t, "destructive", rep.Findings[0].Analyzer)
	require.Len(t, rep.Suppressed, 1)
	require.Equal(t, 9, rep.Suppressed[0].Line)
}
