// Package pgserver starts private PostgreSQL servers from the installed
// server binaries, for the tests and tools that must never touch a shared
// server: the fault suite (restarts and crashes), the standby tests (a primary
// and a pg_basebackup -R standby) and the zero-setup start.
//
// A server lives in a temporary directory, listens on a free port of
// 127.0.0.1 and on a private unix socket, and trusts every local connection;
// its superuser is root, as on the shared server. PostgreSQL refuses to run as
// the root OS user, so when the process is root the server's commands run as
// the unprivileged `postgres` OS user (Options.OSUser), which owns the
// directory.
//
// Close stops the server and removes its directory. A watcher process does
// the same if the process that started the server dies first (a test killed
// by its timeout, say), so no server outlives its owner by more than a few
// seconds.
package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mode is how a server is stopped.
type Mode string

const (
	// Fast disconnects clients, rolls back their transactions and shuts
	// down cleanly (pg_ctl -m fast).
	Fast Mode = "fast"
	// Immediate aborts every process without a clean shutdown; the next
	// start runs crash recovery (pg_ctl -m immediate).
	Immediate Mode = "immediate"
)

// Superuser is the database superuser of every private server.
const Superuser = "root"

// Options configures a private server. The zero value is usable.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres. Empty: BinDir() finds it.
	BinDir string
	// OSUser runs the server when the process is root. Default "postgres".
	OSUser string
	// Settings are written to postgresql.conf, e.g. {"fsync": "off"}.
	Settings map[string]string
	// Logf, when set, receives one line per lifecycle step.
	Logf func(format string, args ...any)
}

// Server is a running (or stopped) private PostgreSQL server.
type Server struct {
	dir     string // owned temporary directory: data/, sock/, server.log
	bin     string
	port    int
	cred    *syscall.Credential
	uid     int
	gid     int
	logf    func(string, ...any)
	watcher *os.Process

	mu      sync.Mutex
	running bool
	closed  bool
}

// ErrNoBinaries is returned when no PostgreSQL server binaries are installed.
var ErrNoBinaries = errors.New("pgserver: no PostgreSQL server binaries found (looked in $RUNLEDGER_PG_BINDIR, /usr/lib/postgresql/*/bin and pg_config --bindir)")

// BinDir returns the directory of the newest installed server binaries:
// $RUNLEDGER_PG_BINDIR, else the highest /usr/lib/postgresql/N/bin, else
// `pg_config --bindir`, whichever holds initdb first.
func BinDir() (string, error) {
	has := func(d string) bool {
		st, err := os.Stat(filepath.Join(d, "initdb"))
		return err == nil && !st.IsDir()
	}
	if d := os.Getenv("RUNLEDGER_PG_BINDIR"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("pgserver: RUNLEDGER_PG_BINDIR=%s holds no initdb", d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates a cluster in a new temporary directory and starts it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	if err := s.run(ctx, "initdb", "-D", data, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.remove()
		return nil, err
	}
	if err := s.appendConf(filepath.Join(data, "postgresql.conf"), s.baseSettings(opts.Settings)); err != nil {
		s.remove()
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		s.remove()
		return nil, err
	}
	s.logf("pgserver: started PostgreSQL on 127.0.0.1:%d (%s)", s.port, s.dir)
	return s, nil
}

func prepare(opts Options) (*Server, error) {
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = BinDir(); err != nil {
			return nil, err
		}
	}
	s := &Server{bin: bin, logf: opts.Logf, uid: -1, gid: -1}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if os.Geteuid() == 0 {
		name := opts.OSUser
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("pgserver: running as root, PostgreSQL needs an unprivileged OS user: %w (create it: useradd --system %s)", err, name)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.uid, s.gid = uid, gid
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "runledger-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s.dir = dir
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
		s.remove()
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if s.cred != nil {
		for _, p := range []string{dir, filepath.Join(dir, "sock")} {
			if err := os.Chown(p, s.uid, s.gid); err != nil {
				s.remove()
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
	}
	if s.port, err = freePort(); err != nil {
		s.remove()
		return nil, err
	}
	s.watch()
	return s, nil
}

func (s *Server) baseSettings(extra map[string]string) map[string]string {
	m := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": quote(filepath.Join(s.dir, "sock")),
		"port":                    strconv.Itoa(s.port),
		"shared_buffers":          "'32MB'",
		"max_connections":         "100",
		"max_wal_senders":         "5",
		"wal_level":               "replica",
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"log_min_messages":        "warning",
		"logging_collector":       "off",
	}
	for k, v := range extra {
		m[k] = quoteIfNeeded(v)
	}
	return m
}

func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

func quoteIfNeeded(v string) string {
	if strings.HasPrefix(v, "'") {
		return v
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return v
	}
	switch v {
	case "on", "off", "true", "false":
		return v
	}
	return quote(v)
}

func (s *Server) appendConf(path string, m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# runledger pgserver\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, m[k])
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		_ = f.Close()
		return fmt.Errorf("pgserver: %w", err)
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run runs one of the server binaries as the server's OS user.
func (s *Server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C", "HOME=" + s.dir, "TZ=UTC"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgserver: %s: %w\n%s%s", name, err, lastLines(string(out), 15), s.LogTail(20))
	}
	return nil
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the server's temporary directory (data/, sock/, server.log).
func (s *Server) Dir() string { return s.dir }

// DataDir is the server's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// URL is a connection string for database dbname as the superuser, over TCP.
func (s *Server) URL(dbname string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.port, dbname)
}

// Start starts the server again after Stop. It returns once the server
// accepts connections (crash recovery included).
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pgserver: server is closed")
	}
	if s.running {
		return nil
	}
	if err := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "120", "start"); err != nil {
		return err
	}
	s.running = true
	return nil
}

// Stop stops the server in the given mode; Start starts it again.
func (s *Server) Stop(ctx context.Context, mode Mode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx, mode)
}

func (s *Server) stopLocked(ctx context.Context, mode Mode) error {
	if !s.running {
		return nil
	}
	if mode != Fast && mode != Immediate {
		return fmt.Errorf("pgserver: unknown stop mode %q", mode)
	}
	if err := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-m", string(mode), "-w", "-t", "120", "stop"); err != nil {
		return err
	}
	s.running = false
	return nil
}

// Restart stops the server in the given mode and starts it again.
func (s *Server) Restart(ctx context.Context, mode Mode) error {
	if err := s.Stop(ctx, mode); err != nil {
		return err
	}
	s.logf("pgserver: stopped 127.0.0.1:%d (%s), starting again", s.port, mode)
	return s.Start(ctx)
}

// Standby makes a streaming standby of s with pg_basebackup -R in a new
// temporary directory, starts it, and returns it once it accepts (read-only)
// connections. Close it before (or independently of) its primary.
func (s *Server) Standby(ctx context.Context) (*Server, error) {
	sb, err := prepare(Options{BinDir: s.bin, Logf: s.logf, OSUser: osUserOf(s)})
	if err != nil {
		return nil, err
	}
	data := sb.DataDir()
	if err := sb.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", Superuser,
		"-D", data, "-R", "-X", "stream", "--no-sync", "-c", "fast"); err != nil {
		sb.remove()
		return nil, err
	}
	over := map[string]string{
		"port":                    strconv.Itoa(sb.port),
		"unix_socket_directories": quote(filepath.Join(sb.dir, "sock")),
		"hot_standby":             "on",
	}
	if err := sb.appendConf(filepath.Join(data, "postgresql.auto.conf"), over); err != nil {
		sb.remove()
		return nil, err
	}
	if err := sb.Start(ctx); err != nil {
		sb.remove()
		return nil, err
	}
	sb.logf("pgserver: started standby of :%d on 127.0.0.1:%d", s.port, sb.port)
	return sb, nil
}

func osUserOf(s *Server) string {
	if s.cred == nil {
		return ""
	}
	u, err := user.LookupId(strconv.Itoa(s.uid))
	if err != nil {
		return ""
	}
	return u.Username
}

// Close stops the server (immediately: nothing on it is meant to outlive the
// test) and removes its directory. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stopLocked(context.Background(), Immediate)
	if err != nil {
		s.killPostmaster()
	}
	s.remove()
	return err
}

// killPostmaster sends SIGQUIT (immediate shutdown) to the postmaster named
// in postmaster.pid, for when pg_ctl could not stop it.
func (s *Server) killPostmaster() {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) remove() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	if s.watcher != nil {
		_ = s.watcher.Release()
	}
}

// watch starts a detached shell that, if this process dies while the
// directory still exists, stops the server and removes the directory.
func (s *Server) watch() {
	script := `while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
[ -d "$2" ] || exit 0
if [ -f "$2/data/postmaster.pid" ]; then kill -QUIT "$(head -n1 "$2/data/postmaster.pid")" 2>/dev/null; sleep 1; fi
rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "pgserver-watch", strconv.Itoa(os.Getpid()), s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		s.watcher = cmd.Process
	}
}

// LogTail returns up to the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	return "server.log:\n" + lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
