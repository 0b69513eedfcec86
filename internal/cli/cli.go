// Package cli implements the runledger command. Every command writes to the
// io.Writers and logger it is given, so tests run it like a function.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Env is what a command may use of its surroundings.
type Env struct {
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
	Getenv         func(string) string
}

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

type command struct {
	name, args, help string
	run              func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"migrate apply", "[--url URL] [--to VERSION] [--dry-run]", "apply pending migrations (one transaction per file, under an advisory lock)", migrateApply},
		{"migrate status", "[--url URL]", "show the current version, pending files and whether the database is dirty", migrateStatus},
		{"migrate diff", "NAME [--dev-url URL] [--dir DIR] [--check]", "plan ent/schema changes into a new migration file (--check: fail if anything would be planned)", migrateDiff},
		{"migrate new", "NAME [--dir DIR]", "create an empty migration file for hand-written SQL", migrateNew},
		{"migrate hash", "[--dir DIR]", "rewrite atlas.sum after editing a migration file", migrateHash},
		{"migrate validate", "[--dir DIR]", "check the migration directory against atlas.sum", migrateValidate},
		{"migrate lint", "[--latest N] [--dev-url URL] [--dir DIR]", "check migration files for destructive and risky changes (Atlas analyzers; docs/lint.md)", migrateLint},
		{"inspect run", "ID [--url URL]", "print a run as a tree: batches with counts and durations, failed items with their errors and history", inspectRun},
		{"progress", "ID [--url URL]", "print a run's item counts by status, in all and per batch", progress},
		{"demo", "[--url URL]", "create a demo database, record a run and print it as a tree", demo},
	}
}

// Run runs the command named by args and returns the process exit status:
// 0 on success, 1 on failure, 2 on a usage error.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(env.Stderr, nil))
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		return 0
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			err := c.run(ctx, env, args[len(words):])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				fmt.Fprintf(env.Stderr, "runledger %s: %v\nusage: runledger %s %s\n", c.name, err, c.name, c.args)
				return 2
			default:
				fmt.Fprintf(env.Stderr, "runledger %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(env.Stderr, "runledger: unknown command %q\n\n", strings.Join(args, " "))
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "runledger: the persistence layer for tracking automated work.")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  runledger %s %s\n      %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nThe database comes from --url, else DATABASE_URL.")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("runledger "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parse parses args, allowing flags after positional arguments, and returns
// the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// databaseURL returns the --url flag's value or DATABASE_URL.
func databaseURL(env Env, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := env.Getenv("DATABASE_URL"); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%w: no database: set DATABASE_URL or pass --url", errUsage)
}
