// Package procstat reads the CPU time of processes from /proc, for the
// benchmark programs' CPU-per-item figures: the CPU time of a whole
// PostgreSQL server (its postmaster and every backend) and of this process.
// Linux only, as the benchmarks are.
package procstat

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTick is the unit of the times in /proc/<pid>/stat (USER_HZ).
const ClockTick = 10 * time.Millisecond

// PostmasterPID reads a server's pid from postmaster.pid in its data
// directory (the server must run on this machine).
func PostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid (the server must run on this machine): %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// Stat returns a process's parent, its user + system CPU time, and that of
// its waited-for (exited) children.
func Stat(pid int) (ppid int, own, children time.Duration, err error) {
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
	return ppid, time.Duration(v[0]+v[1]) * ClockTick, time.Duration(v[2]+v[3]) * ClockTick, err
}

// ServerCPU is the CPU time a whole server has used so far: the
// postmaster's own and its exited children's, plus its live children's
// (backends, autovacuum, writers).
func ServerCPU(postmaster int) (time.Duration, error) {
	_, own, exited, err := Stat(postmaster)
	if err != nil {
		return 0, err
	}
	total := own + exited
	d, err := os.Open("/proc")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			pid, convErr := strconv.Atoi(n)
			if convErr != nil {
				continue
			}
			ppid, t, _, statErr := Stat(pid)
			if statErr != nil || ppid != postmaster {
				continue // not a child, or gone since the listing
			}
			total += t
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// SelfCPU is this process's user + system CPU time.
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
