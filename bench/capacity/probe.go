package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/execution"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// probeRun measures, on the database of a running capacity server (-attach
// with -probe; pause the program that loaded it, kill -STOP), the server CPU
// of one Claim of cfg.batch items: cfg.calls claims, each failed back like
// the claim latency's, with the CPU of the whole server (the postmaster and
// every process under it) read from /proc before and after each call. CPU
// time does not depend on how busy the machine is, where latency does; the
// server must run on this machine.
func probeRun(ctx context.Context, cfg *config, header string, out io.Writer, logger *log.Logger) error {
	d, err := db.Open(ctx, db.Config{URL: cfg.attach, PoolSize: 1, MaxOverflow: 0})
	if err != nil {
		return err
	}
	defer d.Close()
	e := &env{cfg: cfg, log: logger, d: d, x: execution.New(d, execution.Options{RetryBase: time.Millisecond, RetryMax: time.Millisecond})}
	defer func() { _ = e.x.Close() }()
	var dataDir string
	if err := d.SQL().QueryRowContext(ctx, `SELECT current_setting('data_directory')`).Scan(&dataDir); err != nil {
		return err
	}
	pid, err := postmasterPID(dataDir)
	if err != nil {
		return err
	}
	var finished int64
	if err := d.SQL().QueryRowContext(ctx, `SELECT coalesce(sum(delta), 0) FROM status_count WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')`).Scan(&finished); err != nil {
		return err
	}
	var claimCPU, failCPU, wall []float64
	for range cfg.calls {
		c0, err := serverCPU(pid)
		if err != nil {
			return err
		}
		t := time.Now()
		got, err := e.x.Claim(ctx, "prober", cfg.batch, time.Minute)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		wall = append(wall, ms(time.Since(t)))
		c1, err := serverCPU(pid)
		if err != nil {
			return err
		}
		if err := e.failBack(ctx, "prober", got); err != nil {
			return err
		}
		c2, err := serverCPU(pid)
		if err != nil {
			return err
		}
		if len(got) != cfg.batch {
			return fmt.Errorf("claim took %d of %d items", len(got), cfg.batch)
		}
		claimCPU = append(claimCPU, ms(c1-c0))
		failCPU = append(failCPU, ms(c2-c1))
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	l := latencyOf(wall)
	fmt.Fprintf(out, "%s\nprobe of %s with %d finished item executions: %d claims of %d on one connection, each failed back\n"+
		"claim wall median %.2f ms (p90 %.2f); server CPU per claim %.2f ms, per Fail %.2f ms (mean; /proc ticks of %s); load average at end %s\n",
		header, "the attached database", finished, cfg.calls, cfg.batch, l.p50, l.p90, mean(claimCPU), mean(failCPU), clockTick, loadAverage())
	return nil
}

// postmasterPID reads the server's pid from postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid (the server must run on this machine): %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
}

// procStat returns a process's parent, its user + system CPU time and that
// of its waited-for children.
func procStat(pid int) (ppid int, own, children time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, time.Duration(v[0]+v[1]) * clockTick, time.Duration(v[2]+v[3]) * clockTick, err
}

// serverCPU is the CPU time a whole server has used so far: the
// postmaster's own and its exited children's, plus its live children's.
func serverCPU(postmaster int) (time.Duration, error) {
	_, own, exited, err := procStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := own + exited
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, ent := range entries {
		pid, convErr := strconv.Atoi(ent.Name())
		if convErr != nil {
			continue
		}
		ppid, t, _, statErr := procStat(pid)
		if statErr != nil || ppid != postmaster {
			continue // not a child, or gone since the listing
		}
		total += t
	}
	return total, nil
}
