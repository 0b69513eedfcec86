package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go runs PostgreSQL on.
const clockTick = 10 * time.Millisecond

// cpuSnap is the CPU time used so far by the client backends of one
// scratch database (per backend pid, from /proc/<pid>/stat: the server must
// run on this machine) and by this process (getrusage).
type cpuSnap struct {
	backends map[int]time.Duration
	self     time.Duration
	server   bool // the backends could be read
}

// cpuSnapshot reads the CPU used by the client backends connected to
// database name and by this process.
func (s *scratch) cpuSnapshot(ctx context.Context, name string) (cpuSnap, error) {
	snap := cpuSnap{backends: map[int]time.Duration{}, server: true}
	rows, err := s.admin.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, name)
	if err != nil {
		return snap, fmt.Errorf("backends of %s: %w", name, err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return snap, err
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		return snap, err
	}
	for _, pid := range pids {
		t, err := processCPU(pid)
		if err != nil {
			if os.IsNotExist(err) {
				continue // the backend ended since pg_stat_activity listed it
			}
			snap.server = false // another machine's server, or no access
			break
		}
		snap.backends[pid] = t
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return snap, fmt.Errorf("getrusage: %w", err)
	}
	snap.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return snap, nil
}

// processCPU is the user + system CPU time of process pid.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ... utime stime: comm may hold spaces and
	// parentheses, so count the fields after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuUse is the CPU time spent between two snapshots.
type cpuUse struct {
	server, client time.Duration
	serverOK       bool
}

// since is the CPU used from before to s. A backend that connected in
// between counts whole; one that disconnected in between is lost, so the
// sides keep their connections open (pools with as many idle connections
// as they may open).
func (s cpuSnap) since(before cpuSnap) cpuUse {
	u := cpuUse{client: s.self - before.self, serverOK: s.server && before.server}
	for pid, t := range s.backends {
		u.server += t - before.backends[pid]
	}
	return u
}

// cpuFigures are the CPU figures of one side of the burn-down, per item
// (µs), one value per measured repetition.
type cpuFigures struct{ server, client figure }

// timedRate is rate with the CPU figures: setup (untimed), then n items
// through fn, timed, with the CPU it used on database name recorded under key.
func (b *bench) timedRate(key, name string, n int, setup, fn func(ctx context.Context) error) func(ctx context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if setup != nil {
			if err := setup(ctx); err != nil {
				return 0, fmt.Errorf("setup: %w", err)
			}
		}
		var elapsed time.Duration
		err := b.measureCPU(ctx, key, name, n, func(ctx context.Context) error {
			start := time.Now()
			err := fn(ctx)
			elapsed = time.Since(start)
			return err
		})
		if err != nil {
			return 0, err
		}
		return float64(n) / elapsed.Seconds(), nil
	}
}

// measureCPU records, while the bench is in a measured round, the CPU per
// item that fn used on database name (server) and in this process (client)
// under key.
func (b *bench) measureCPU(ctx context.Context, key, name string, n int, fn func(ctx context.Context) error) error {
	before, err := b.scratch.cpuSnapshot(ctx, name)
	if err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		return err
	}
	after, err := b.scratch.cpuSnapshot(ctx, name)
	if err != nil {
		return err
	}
	if !b.measuring {
		return nil
	}
	u := after.since(before)
	f := b.cpu[key]
	if f == nil {
		f = &cpuFigures{}
		b.cpu[key] = f
	}
	perItem := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	f.client = append(f.client, perItem(u.client))
	if u.serverOK {
		f.server = append(f.server, perItem(u.server))
	}
	return nil
}
