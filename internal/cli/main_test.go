package cli_test

import (
	"context"
	"os"
	"testing"

	"github.com/runledger/runledger/internal/cli"
)

// TestMain lets the demo re-execute this test binary as its runner process
// (os.Executable is the test binary here): run with the demo runner's
// command, the binary is that command and nothing else.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == cli.DemoRunnerCommand {
		os.Exit(cli.Execute(context.Background(), os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
	}
	os.Exit(m.Run())
}
