package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	amigrate "ariga.io/atlas/sql/migrate"
	_ "github.com/lib/pq" // the postgres driver
	"github.com/spf13/cobra"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/internal/pgurl"
	"github.com/runledger/runledger/internal/report"
	"github.com/runledger/runledger/migrate"
)

func openSQL(ctx context.Context, url string) (*sql.DB, error) {
	d, err := sql.Open("postgres", url)
	if err != nil {
		return nil, pgurl.ErrMalformed
	}
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		if _, perr := pgurl.Parse(url); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("connect to %s: %w", pgurl.Describe(url), redactPing(err))
	}
	return d, nil
}

// redactPing drops what a connection error might echo of the URL.
func redactPing(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errors.New(firstLine(err.Error()))
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

func newMigrateCmd(env Env) *cobra.Command {
	g := newGroup("migrate", "Apply, inspect and author migrations")
	g.Long = `Apply, inspect and author migrations.

apply and status use the migrations compiled into this binary (what a deployed
binary has) unless --dir names a directory. The authoring commands (new, hash,
validate, diff, lint) work on migrate/migrations of the module around the
working directory unless --dir names another.`
	g.AddCommand(
		newMigrateApplyCmd(env),
		newMigrateStatusCmd(env),
		newMigratePartitionCmd(env),
		newMigrateDiffCmd(env),
		newMigrateNewCmd(env),
		newDirOnlyCmd("hash", "Rewrite atlas.sum after editing a migration file", "atlas.sum rewritten", migrate.Hash),
		newDirOnlyCmd("validate", "Check the migration directory against atlas.sum", "migration directory is valid", migrate.Validate),
		newMigrateLintCmd(env),
	)
	return g
}

// addDeployedDirFlag adds --dir to apply and status.
func addDeployedDirFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("dir", "", "migration directory (default the migrations compiled into this binary)")
}

// addAuthoringDirFlag adds --dir to the authoring commands.
func addAuthoringDirFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("dir", "", "migration directory (default migrate/migrations of the module around the working directory)")
}

// deployedDir opens path, or the embedded migrations when path is empty.
func deployedDir(path string) (amigrate.Dir, error) {
	if path == "" {
		return migrate.Embedded()
	}
	return migrate.Local(path)
}

func newMigrateApplyCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Apply pending migrations (one transaction per file, under an advisory lock)",
		Args:  exactArgs(),
	}
	url := addURLFlag(cmd)
	dirPath := addDeployedDirFlag(cmd)
	to := cmd.Flags().String("to", "", "apply up to and including this version")
	dry := cmd.Flags().Bool("dry-run", false, "print what would run, change nothing")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		u, err := databaseURL(env, *url)
		if err != nil {
			return err
		}
		dir, err := deployedDir(*dirPath)
		if err != nil {
			return err
		}
		return applyTo(cmd.Context(), env, u, dir, migrate.ApplyOptions{ToVersion: *to, DryRun: *dry})
	}
	return cmd
}

// applyTo applies the embedded migrations to the database at url, printing
// one line per file.
func applyTo(ctx context.Context, env Env, url string, dir amigrate.Dir, opts migrate.ApplyOptions) error {
	d, err := openSQL(ctx, url)
	if err != nil {
		return err
	}
	defer d.Close()
	verb := "applied"
	if opts.DryRun {
		verb = "would apply"
	}
	opts.OnFile = func(f migrate.FileResult) {
		fmt.Fprintf(env.Stdout, "%s %s (%d statements, %s)\n", verb, f.Name, f.Statements, f.Duration.Round(time.Millisecond))
	}
	res, err := migrate.Apply(ctx, d, dir, opts)
	if err != nil {
		return err
	}
	if len(res.Files) == 0 {
		fmt.Fprintf(env.Stdout, "no pending migrations (at version %s)\n", orNone(res.From))
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s: version %s -> %s\n", pgurl.Describe(url), orNone(res.From), res.To)
	return nil
}

func newMigratePartitionCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Switch a migrated database to the partitioned layout (item_execution and its history by month)",
		Long: `Switch a migrated database to the opt-in partitioned layout (docs/scaling.md,
section 3): item_execution partitioned by RANGE (id) and item_state_history by
RANGE (item_execution_id), one partition per month of version 7 UUIDs, from
the oldest item execution's month to --ahead months after the current one.

One transaction under the migration lock; it takes ACCESS EXCLUSIVE locks on
both tables and rewrites them: run it in a maintenance window on a large
database. A database already partitioned is left as it is. There is no way
back but a dump and restore. Afterwards something must create the coming
months' partitions: a Runner's elected maintainer does, or call
execution.Client.EnsurePartitions.`,
		Args: exactArgs(),
	}
	url := addURLFlag(cmd)
	ahead := cmd.Flags().Int("ahead", 3, "months after the current one to create partitions for")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		u, err := databaseURL(env, *url)
		if err != nil {
			return err
		}
		if *ahead < 1 {
			return usageErrorf("--ahead must be at least 1")
		}
		d, err := openSQL(ctx, u)
		if err != nil {
			return err
		}
		defer d.Close()
		res, err := migrate.Partition(ctx, d, migrate.PartitionOptions{Ahead: *ahead})
		if err != nil {
			return err
		}
		if res.Already {
			fmt.Fprintf(env.Stdout, "%s: already partitioned\n", pgurl.Describe(u))
			return nil
		}
		fmt.Fprintf(env.Stdout, "%s: partitioned (%d months, %s to %s); moved %d item executions and %d history rows\n",
			pgurl.Describe(u), len(res.Months), res.Months[0].Format("2006-01"), res.Months[len(res.Months)-1].Format("2006-01"),
			res.ItemExecutions, res.History)
		return nil
	}
	return cmd
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

func newMigrateStatusCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the current version, pending files and whether the database is dirty",
		Args:  exactArgs(),
	}
	url := addURLFlag(cmd)
	readOnlyURL := addReadURLFlag(cmd)
	dirPath := addDeployedDirFlag(cmd)
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		dir, err := deployedDir(*dirPath)
		if err != nil {
			return err
		}
		var d *sql.DB
		u := readURL(env, *url, *readOnlyURL)
		if u != "" {
			// A standby (or any server we only read): read-only sessions.
			r, err := db.OpenReplica(ctx, db.Config{URL: u, PoolSize: 1, MaxOverflow: 1})
			if err != nil {
				return err
			}
			defer r.Close()
			d = r.SQL()
		} else {
			if u, err = databaseURL(env, *url); err != nil {
				return err
			}
			if d, err = openSQL(ctx, u); err != nil {
				return err
			}
			defer d.Close()
		}
		st, err := migrate.Status(ctx, d, dir)
		if err != nil {
			return err
		}
		rep := report.NewMigrationStatus(pgurl.Describe(u), st)
		if *out == outputJSON {
			return writeJSON(env.Stdout, rep)
		}
		fmt.Fprintf(env.Stdout, "database: %s\ncurrent version: %s (%d applied)\npending: %d\n", rep.Database, orNone(rep.Current), rep.Applied, len(rep.Pending))
		for _, f := range rep.Pending {
			fmt.Fprintf(env.Stdout, "  %s\n", f)
		}
		if rep.Dirty {
			fmt.Fprintf(env.Stdout, "dirty: yes (%s)\n", rep.DirtyReason)
		} else {
			fmt.Fprintln(env.Stdout, "dirty: no")
		}
		return nil
	}
	return cmd
}

// localDir opens --dir, or migrate/migrations of the enclosing module.
func localDir(path string) (*amigrate.LocalDir, error) {
	if path == "" {
		var err error
		if path, err = migrate.FindDir(); err != nil {
			return nil, err
		}
	}
	return migrate.Local(path)
}

func newMigrateDiffCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff NAME | diff --check",
		Short: "Plan ent/schema changes into a new migration file (--check: fail if anything would be planned)",
		Args: func(cmd *cobra.Command, args []string) error {
			if check, _ := cmd.Flags().GetBool("check"); check {
				if len(args) > 0 {
					return usageErrorf("--check takes no NAME")
				}
				return nil
			}
			return exactArgs("NAME")(cmd, args)
		},
	}
	devURL := cmd.Flags().String("dev-url", "", "server for the temporary dev database (default the local server)")
	dirPath := addAuthoringDirFlag(cmd)
	check := cmd.Flags().Bool("check", false, "write nothing; fail when anything would be planned")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		dir, err := localDir(*dirPath)
		if err != nil {
			return err
		}
		if *check {
			if err := migrate.Check(ctx, dir, migrate.DiffOptions{DevURL: *devURL}); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "migrations are in sync with ent/schema")
			return nil
		}
		name, err := migrate.Diff(ctx, dir, args[0], migrate.DiffOptions{DevURL: *devURL})
		if err != nil {
			return err
		}
		if name == "" {
			fmt.Fprintln(env.Stdout, "no changes: ent/schema matches the migration directory")
			return nil
		}
		fmt.Fprintf(env.Stdout, "wrote %s and atlas.sum: review it, then run 'runledger migrate apply'\n", name)
		return nil
	}
	return cmd
}

func newMigrateNewCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Create an empty migration file for hand-written SQL",
		Args:  exactArgs("NAME"),
	}
	dirPath := addAuthoringDirFlag(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		dir, err := localDir(*dirPath)
		if err != nil {
			return err
		}
		name, err := migrate.New(dir, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s: write the SQL, then run 'runledger migrate hash'\n", name)
		return nil
	}
	return cmd
}

// newDirOnlyCmd is a command that runs fn on the migration directory of
// --dir (or the module's) and prints done.
func newDirOnlyCmd(name, short, done string, fn func(amigrate.Dir) error) *cobra.Command {
	cmd := &cobra.Command{Use: name, Short: short, Args: exactArgs()}
	dirPath := addAuthoringDirFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		dir, err := localDir(*dirPath)
		if err != nil {
			return err
		}
		if err := fn(dir); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), done)
		return nil
	}
	return cmd
}
