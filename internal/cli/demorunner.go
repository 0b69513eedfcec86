package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// DemoRunnerCommand is the hidden command the demo starts as a separate
// runner process (its own binary re-executed) and kills mid-run. A test
// binary that runs the demo dispatches os.Args[1] == DemoRunnerCommand to
// Execute in its TestMain.
const DemoRunnerCommand = "demo-runner"

// The demo's runner process: it handles demoProcQuick items, then its
// handlers hang (a stuck call), so that the kill surely finds it holding
// at least demoProcConcurrency items (more when it claimed ahead of its
// free slots, as a runner does while its handlers are quick).
const (
	demoProcConcurrency = 4
	demoProcQuick       = 5
)

// Lines the runner process prints on stdout, one per event.
const (
	procStarted = "started" // the runner listens
	procLeader  = "leader"  // it holds the maintenance lock
	procBusy    = "busy"    // a handler started that will not return
)

func newDemoRunnerCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:    DemoRunnerCommand,
		Short:  "A runner process the demo starts and kills (not for use on its own)",
		Hidden: true,
		Args:   exactArgs(),
	}
	url := addURLFlag(cmd)
	automation := cmd.Flags().String("automation", "", "the automation to handle")
	name := cmd.Flags().String("name", "", "the runner's name")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		u, err := databaseURL(env, *url)
		if err != nil {
			return err
		}
		if *automation == "" || *name == "" {
			return usageErrorf("want --automation and --name")
		}
		return demoRunner(cmd.Context(), env, u, *automation, *name)
	}
	return cmd
}

// demoRunner runs a Runner for automation until stdin ends (the demo closes
// it, or dies) or ctx ends, printing its events on stdout. It leases items
// for execution.MinLease, so that once it is killed its items expire soon.
func demoRunner(ctx context.Context, env Env, url, automation, name string) error {
	d, err := db.Open(ctx, db.Config{URL: url, PoolSize: demoProcConcurrency + 3})
	if err != nil {
		return err
	}
	defer d.Close()
	x := execution.New(d, execution.Options{})
	defer func() { _ = x.Close() }()
	var mu sync.Mutex
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(env.Stdout, line)
	}
	var calls atomic.Int32
	ws := execution.NewWorkers()
	ws.Handle(automation, execution.HandlerFunc(func(ctx context.Context, _ execution.Claimed) (json.RawMessage, error) {
		if calls.Add(1) <= demoProcQuick {
			select {
			case <-time.After(10 * time.Millisecond): // the work
				return json.RawMessage(`{"matched":true}`), nil
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		say(procBusy)
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}), execution.HandlerOptions{Concurrency: demoProcConcurrency})
	r, err := x.NewRunner(ws, execution.RunnerOptions{Name: name, Lease: execution.MinLease, MaintenanceInterval: demoMaintenance})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	say(procStarted)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, env.Stdin)
		close(eof)
	}()
	// Say when the runner is elected (its first try comes at once).
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for wait := true; wait; {
		if r.Stats().Leader {
			say(procLeader)
			break
		}
		select {
		case <-t.C:
		case <-eof:
			wait = false
		case <-ctx.Done():
			wait = false
		}
	}
	select {
	case <-eof:
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return r.Stop(stop)
}

// runnerProcess is the demo's runner process, seen from the demo.
type runnerProcess struct {
	name  string
	cmd   *exec.Cmd
	stdin io.Closer
	lines chan string   // what it prints, line by line; closed at its end
	quit  chan struct{} // closed by kill: lines nobody reads are dropped
	read  sync.WaitGroup
	once  sync.Once
}

// startRunnerProcess starts this binary again as runner name for
// automation, on the database at url (passed in its environment, never on
// its command line). Its stderr goes to env.Stderr. The caller must kill it.
func startRunnerProcess(env Env, url, automation, name string) (*runnerProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("demo: find this program to start runner %s: %w", name, err)
	}
	cmd := exec.Command(exe, DemoRunnerCommand, "--automation", automation, "--name", name)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	cmd.Stderr = env.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("demo: runner %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("demo: runner %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start runner %s: %w", name, err)
	}
	p := &runnerProcess{name: name, cmd: cmd, stdin: stdin, lines: make(chan string), quit: make(chan struct{})}
	p.read.Add(1)
	go func() {
		defer p.read.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			case <-p.quit:
			}
		}
	}()
	return p, nil
}

// await reads the process's lines until want came n times (true), until
// comes first (false), or the process ends (an error).
func (p *runnerProcess) await(ctx context.Context, want string, n int, until <-chan time.Time) (bool, error) {
	for n > 0 {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return false, fmt.Errorf("demo: runner %s ended before it said %q", p.name, want)
			}
			if line == want {
				n--
			}
		case <-until:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return true, nil
}

// kill ends the process at once with SIGKILL (no Stop, no hand-back) and
// waits for it. Only the first call does anything.
func (p *runnerProcess) kill() error {
	var err error
	p.once.Do(func() {
		if kerr := p.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = fmt.Errorf("demo: kill runner %s: %w", p.name, kerr)
		}
		_ = p.stdin.Close()
		close(p.quit)
		p.read.Wait()
		_ = p.cmd.Wait() // "signal: killed"
	})
	return err
}
