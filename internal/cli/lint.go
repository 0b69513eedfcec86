package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runledger/runledger/migrate"
)

// newMigrateLintCmd runs Atlas's analyzers on the migration files. It prints
// one line per finding,
//
//	FILE:LINE CODE SEVERITY message
//
// followed by the statement, indented by a tab (LINE is the line the
// statement starts on, as Atlas reports it; a finding about the whole file
// has FILE alone). Findings a directive let through follow as
//
//	FILE:LINE CODE ignored: reason
//
// and a summary line ends the output. It fails (exit 1) when an error-level
// finding remains.
func newMigrateLintCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lint",
		Short: "Check migration files for destructive and risky changes (Atlas analyzers; docs/lint.md)",
		Args:  exactArgs(),
	}
	latest := cmd.Flags().Int("latest", 0, "analyze only the last N files (the earlier ones are replayed); 0 analyzes all")
	devURL := cmd.Flags().String("dev-url", "", "server for the temporary dev database (default the local server)")
	dirPath := addAuthoringDirFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *latest < 0 {
			return usageErrorf("--latest must be 0 or more")
		}
		dir, err := localDir(*dirPath)
		if err != nil {
			return err
		}
		rep, err := migrate.Lint(cmd.Context(), dir, migrate.LintOptions{DevURL: *devURL, Latest: *latest})
		if err != nil {
			return err
		}
		printLint(env.Stdout, rep)
		if rep.Failed() {
			return fmt.Errorf("%s: fix the migration or, once reviewed, put '-- atlas:nolint CODE' and a comment saying why right above the statement (docs/lint.md)", plural(rep.Errors(), "error-level finding"))
		}
		return nil
	}
	return cmd
}

func printLint(w io.Writer, rep *migrate.LintReport) {
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%s %s %s %s\n", where(f), f.Code, f.Severity, f.Message)
		if f.Stmt != "" {
			fmt.Fprintf(w, "\t%s\n", strings.ReplaceAll(f.Stmt, "\n", "\n\t"))
		}
	}
	for _, f := range rep.Suppressed {
		fmt.Fprintf(w, "%s %s ignored: %s\n", where(f), f.Code, f.Reason)
	}
	replayed := ""
	if rep.Replayed > 0 {
		replayed = fmt.Sprintf(" (after replaying %s)", plural(rep.Replayed, "earlier file"))
	}
	fmt.Fprintf(w, "linted %s%s: %s, %s, %d ignored\n",
		plural(len(rep.Files), "file"), replayed, plural(rep.Errors(), "error"), plural(rep.Warnings(), "warning"), len(rep.Suppressed))
}

// where is FILE:LINE, or FILE for a finding about the whole file.
func where(f migrate.Finding) string {
	if f.Line == 0 {
		return f.File
	}
	return fmt.Sprintf("%s:%d", f.File, f.Line)
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
