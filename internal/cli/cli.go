// Package cli implements the runledger command on spf13/cobra. Every command
// writes to the io.Writers and logger of the Env it is given, so tests run it
// like a function: Execute(ctx, args, env) returns the exit status.
//
// Exit status: 0 success, 1 failure, 2 usage error (unknown command or flag,
// wrong arguments, no database given). An error is printed once, on stderr,
// prefixed by the command's path.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runledger/runledger/internal/pgurl"
)

// Exit statuses returned by Execute.
const (
	ExitOK      = 0 // the command succeeded
	ExitFailure = 1 // the command failed
	ExitUsage   = 2 // the command line was wrong
)

// Env is what a command may use of its surroundings.
type Env struct {
	// Stdin is read only by the demo's runner process (the demo closes it
	// to stop the process); nil reads as empty.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
	Getenv         func(string) string
	// IsTerminal reports whether w is an interactive terminal (progress bars
	// are drawn only then). Nil means: w is an *os.File on a terminal.
	IsTerminal func(w io.Writer) bool
}

// withDefaults fills the optional fields of env.
func (env Env) withDefaults() Env {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(env.Stderr, nil))
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.IsTerminal == nil {
		env.IsTerminal = isTerminal
	}
	return env
}

// isTerminal reports whether w is a file on a terminal (looking through a
// redacting writer).
func isTerminal(w io.Writer) bool {
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok {
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// redacted returns env with its writers and logger behind the redactor of
// the passwords in args and in the URL environment variables.
func (env Env) redacted(args []string) Env {
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	values := append([]string(nil), args...)
	password := ""
	for _, k := range pgurl.EnvVars {
		if k == "PGPASSWORD" {
			password = getenv(k)
		} else {
			values = append(values, getenv(k))
		}
	}
	r := pgurl.NewRedactor(values...)
	r.AddPassword(password)
	if env.Stdout != nil {
		env.Stdout = r.Writer(env.Stdout)
	}
	if env.Stderr != nil {
		env.Stderr = r.Writer(env.Stderr)
	}
	if env.Logger != nil {
		env.Logger = slog.New(r.Handler(env.Logger.Handler()))
	}
	return env
}

// UsageError is a command-line mistake: Execute prints it with a pointer to
// the command's help and returns ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Execute runs the command named by args and returns the process exit
// status: ExitOK, ExitFailure or ExitUsage.
//
// Everything it prints (stdout, stderr, the logger's records, the errors it
// reports) goes through one pgurl.Redactor built from args and the URL
// environment variables, so no password given to it is ever printed, even
// one inside a connection string too malformed to parse.
func Execute(ctx context.Context, args []string, env Env) int {
	env = env.redacted(args).withDefaults()
	root := NewRoot(env)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if cmd == nil {
		cmd = root
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return ExitUsage
	}
	fmt.Fprintf(env.Stderr, "%s: %v\n", cmd.CommandPath(), err)
	return ExitFailure
}

// NewRoot builds the command tree. Commands print to env's writers; errors
// are returned, never printed, so Execute prints each one once.
func NewRoot(env Env) *cobra.Command {
	env = env.withDefaults()
	root := &cobra.Command{
		Use:   "runledger",
		Short: "The persistence layer for tracking automated work",
		Long: `runledger migrates, inspects and demonstrates a runledger database.

The database comes from --url, else DATABASE_URL. Read commands (inspect,
progress, migrate status) read from --read-url, else DATABASE_READ_URL
(a standby), when given, with read-only sessions.
Exit status: 0 success, 1 failure, 2 usage error.`,
		Version:       Version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.AddCommand(
		newMigrateCmd(env),
		newInspectCmd(env),
		newProgressCmd(env),
		newRetryCmd(env),
		newServeCmd(env),
		newDemoCmd(env),
		newDemoRunnerCmd(env),
	)
	return root
}

func init() {
	cobra.AddTemplateFunc("leafCommands", leafCommands)
}

// usageTemplate lists every command below a group by its full path.
const usageTemplate = `Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} COMMAND [flags]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range leafCommands .}}
  {{rpad .CommandPath 28}} {{.Short}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for a command's arguments and flags.{{end}}
`

// leafCommands returns the commands below c that do something, in order.
func leafCommands(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		if sub.HasAvailableSubCommands() {
			out = append(out, leafCommands(sub)...)
			continue
		}
		out = append(out, sub)
	}
	return out
}

// newGroup returns a command that only holds subcommands: alone it prints
// its help; with an unknown subcommand it is a usage error.
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
}

func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &UsageError{Err: errors.New(msg)}
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return usageErrorf("unexpected argument %q", strings.Join(args, " "))
		}
		return usageErrorf("want %s, got %d argument(s)", strings.Join(names, " "), len(args))
	}
}

// Version is the module version and VCS revision of this build, from the
// build information ("revision unknown" when the build recorded none).
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown) revision unknown"
	}
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	rev, modified, at := "", false, ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "vcs.time":
			at = s.Value
		}
	}
	if rev == "" {
		return v + " revision unknown"
	}
	out := v + " revision " + rev
	if at != "" {
		out += " (" + at + ")"
	}
	if modified {
		out += " modified"
	}
	return out
}

// databaseURL returns the --url flag's value or DATABASE_URL.
func databaseURL(env Env, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := env.Getenv("DATABASE_URL"); v != "" {
		return v, nil
	}
	return "", usageErrorf("no database: set DATABASE_URL or pass --url")
}

// output is the value of an --output (-o) flag: text or json.
type output string

// Output formats.
const (
	outputText output = "text"
	outputJSON output = "json"
)

func (o *output) String() string { return string(*o) }

// Set accepts text or json.
func (o *output) Set(s string) error {
	switch output(s) {
	case outputText, outputJSON:
		*o = output(s)
		return nil
	}
	return fmt.Errorf("want text or json, got %q", s)
}

// Type names the flag's value in help.
func (o *output) Type() string { return "format" }

// addOutputFlag adds -o/--output to cmd.
func addOutputFlag(cmd *cobra.Command) *output {
	o := outputText
	cmd.Flags().VarP(&o, "output", "o", "output format: text or json (docs/cli.md)")
	return &o
}

// addURLFlag adds --url to cmd.
func addURLFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("url", "", "database URL (default $DATABASE_URL)")
}

// addReadURLFlag adds --read-url to a command that only reads.
func addReadURLFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("read-url", "", "read from this server instead, read-only: a standby (default $DATABASE_READ_URL unless --url is given)")
}

// readURL returns the URL a read command reads from instead of the
// primary: --read-url, else DATABASE_READ_URL unless --url was given; ""
// for none.
func readURL(env Env, flagURL, flagReadURL string) string {
	switch {
	case flagReadURL != "":
		return flagReadURL
	case flagURL != "":
		return ""
	default:
		return env.Getenv("DATABASE_READ_URL")
	}
}
