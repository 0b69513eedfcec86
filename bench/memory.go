package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// childCommand is the hidden subcommand the memory workload re-executes the
// bench binary with: one ingest in a fresh process, which then reports its
// peak resident set size.
const childCommand = "ingest-child"

// childResult is what a child prints on stdout.
type childResult struct {
	Items   int     `json:"items"`
	Seconds float64 `json:"seconds"`
	VmHWMkB int64   `json:"vm_hwm_kb"` // peak RSS, from /proc/self/status
}

// memory: the peak RSS of a process that ingests -mem items with AddItems
// from a generator (nothing materialized), against one that COPYs the same
// rows raw. Each repetition is a fresh child process; there is no warm-up
// round (a new process has nothing to warm).
func (b *bench) memory(ctx context.Context) error {
	d, dsn, err := b.scratch.runledger(ctx, "memory", 2)
	if err != nil {
		return err
	}
	defer d.Close()
	_, batches, err := newAutomation(ctx, d, "memory", b.cfg.schema, 1)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	n := b.cfg.memN
	child := func(mode string) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			if err := truncate(ctx, d.SQL(), "item"); err != nil {
				return 0, err
			}
			cmd := exec.CommandContext(ctx, exe, childCommand, "-url", dsn, "-batch", batches[0].String(), "-n", strconv.Itoa(n), "-mode", mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return 0, fmt.Errorf("child %s: %w", mode, err)
			}
			var res childResult
			if err := json.Unmarshal(out, &res); err != nil {
				return 0, fmt.Errorf("child %s: %w: %q", mode, err, out)
			}
			if res.Items != n {
				return 0, fmt.Errorf("child %s ingested %d of %d items", mode, res.Items, n)
			}
			// Not getrusage's ru_maxrss: on Linux it may count the parent's
			// pages the child had between fork and exec.
			b.log.Printf("   child %s: %s items in %.1fs (%s items/s), VmHWM %d kB",
				mode, count(n), res.Seconds, human(float64(n)/res.Seconds), res.VmHWMkB)
			return float64(res.VmHWMkB) * 1024 / 1e6, nil
		}
	}
	figs, err := b.rounds(ctx, "MB", false,
		variant{"peak RSS: AddItems child", child("runledger")},
		variant{"peak RSS: raw COPY child", child("copy")},
	)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{workload: fmt.Sprintf("peak RSS, ingest %s: AddItems vs raw COPY process", count(n)), ours: figs[0], base: figs[1], unit: "MB", target: target{valueBelow, 100}})
	return nil
}

// ingestChild is the child process: it ingests -n generated items into
// -batch and prints a childResult.
func ingestChild(args []string) error {
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	dsn := fs.String("url", "", "database URL")
	batch := fs.String("batch", "", "batch id")
	n := fs.Int("n", 0, "items")
	mode := fs.String("mode", "runledger", "runledger (AddItems) or copy (raw COPY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	batchID, err := uuid.Parse(*batch)
	if err != nil {
		return fmt.Errorf("-batch: %w", err)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: *dsn, PoolSize: 2})
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	switch *mode {
	case "runledger":
		var got int64
		got, err = execution.New(d, execution.Options{}).AddItems(ctx, batchID, generate(*n))
		if err == nil && got != int64(*n) {
			err = fmt.Errorf("added %d of %d items", got, *n)
		}
	case "copy":
		err = rawCopy(ctx, d.SQL(), batchID, *n)
	default:
		err = fmt.Errorf("-mode: unknown %q", *mode)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Items: *n, Seconds: elapsed.Seconds(), VmHWMkB: hwm})
}

// vmHWM reads the process's peak resident set size in kB.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
