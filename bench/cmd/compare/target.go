package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/engine"
)

// target is a place the workloads run in.
type target interface {
	name() string
	// data is the work area: it exists once setup returned.
	data() string
	setup(ctx context.Context) error
	// remount makes the next read go through the file system again: a
	// FUSE target is unmounted (its plaintext pages go) and mounted again,
	// with the whole page cache dropped in between when drop is set; the
	// plain target, which has nothing to unmount, always drops the page
	// cache (the definition of a remount for the plain directory).
	remount(ctx context.Context, drop bool) error
	// close unmounts (idempotent).
	close(ctx context.Context) error
	// serverPid is the FUSE server's pid (0: none).
	serverPid() int
	// conn is the FUSE connection number of the mount (the minor of its
	// st_dev), as the fuse tracepoints print it; 0: none.
	conn() uint32
	rss() *rssTracker
}

func newTarget(name string, b *bench) (target, error) {
	dir, err := b.mkdir(name)
	if err != nil {
		return nil, err
	}
	switch name {
	case "plain":
		return &plainFS{dir: dir}, nil
	case "mysecure", "mysecure-admin", "mysecure-b":
		src := b.cfg.mysecure
		var env []string
		if name == "mysecure-b" {
			src, env = b.cfg.bBin, b.cfg.bEnv
		}
		bin, err := filepath.Abs(src)
		if err != nil {
			return nil, err
		}
		return &mysecureFS{tname: name, admin: name == "mysecure-admin", bin: bin, dir: dir, extraEnv: env}, nil
	case "gocryptfs":
		return newGocryptFS(dir), nil
	case "engine":
		return &engineFS{plainFS{dir: dir}}, nil
	case "gofuse-loopback":
		if b.cfg.loopback == "" {
			return nil, errors.New("target gofuse-loopback needs -loopback (go-fuse's example/loopback)")
		}
		return newLoopbackFS(dir, b.cfg.loopback), nil
	case "bindfs":
		return newBindFS(dir), nil
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// dropCaches writes back dirty data and drops the page cache, dentries
// and inodes of the whole machine.
func dropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// ---- plain ----

type plainFS struct {
	dir string
	rt  rssTracker
}

func (p *plainFS) name() string                        { return "plain" }
func (p *plainFS) data() string                        { return filepath.Join(p.dir, "mysql") }
func (p *plainFS) serverPid() int                      { return 0 }
func (p *plainFS) conn() uint32                        { return 0 }
func (p *plainFS) rss() *rssTracker                    { return &p.rt }
func (p *plainFS) close(context.Context) error         { return nil }
func (p *plainFS) setup(context.Context) error         { return os.MkdirAll(p.data(), 0o755) }
func (p *plainFS) remount(context.Context, bool) error { return dropCaches() }

// ---- engine ----

// engineFS is the plain disk with MariaDB's own encryption on (engine
// mode): the server gets the option file 'mysecure engine enable' writes
// (package engine), its key file in the target's directory. The key is
// read once at start, so where it lives does not change the throughput.
type engineFS struct{ plainFS }

func (e *engineFS) name() string { return "engine" }

// serverDefaults writes fresh keys and engine mode's option file and
// returns the server's leading option (--defaults-file).
func (e *engineFS) serverDefaults() ([]string, error) {
	keys, err := engine.NewKeyFile()
	if err != nil {
		return nil, err
	}
	defer keys.Wipe()
	kdir := filepath.Join(e.dir, "keys")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return nil, err
	}
	kf := filepath.Join(kdir, "keys.txt")
	b := keys.Marshal()
	defer clear(b)
	if err := os.WriteFile(kf, b, 0o400); err != nil {
		return nil, err
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	if err := os.Chown(kf, uid, -1); err != nil {
		return nil, err
	}
	o := engine.Options{Binary: "/usr/sbin/mariadbd", CnfDir: kdir, Mount: "/unused"}
	if err := o.Fill(); err != nil {
		return nil, err
	}
	cnf := strings.Replace(o.ServerConfig(), o.KeyInMount(), kf, 1)
	p := filepath.Join(kdir, "engine.cnf")
	if err := os.WriteFile(p, []byte(cnf), 0o644); err != nil {
		return nil, err
	}
	return []string{"--defaults-file=" + p}, nil
}

// ---- mysecure ----

// mysecureFS is a volume served by the real daemon (bin/mysecure mount).
type mysecureFS struct {
	tname    string
	admin    bool
	bin      string
	dir      string
	extraEnv []string
	rt       rssTracker

	mu  sync.Mutex // mount and unmount: the main goroutine and a signal's cleanup
	pid int
	dev uint32
}

func (m *mysecureFS) name() string     { return m.tname }
func (m *mysecureFS) mnt() string      { return filepath.Join(m.dir, "mnt") }
func (m *mysecureFS) data() string     { return filepath.Join(m.mnt(), "mysql") }
func (m *mysecureFS) serverPid() int   { return m.pid }
func (m *mysecureFS) conn() uint32     { return m.dev }
func (m *mysecureFS) rss() *rssTracker { return &m.rt }

func (m *mysecureFS) env() []string {
	return append(append(os.Environ(),
		"MYSECURE_STORE="+filepath.Join(m.dir, "store"),
		"MYSECURE_MOUNT="+m.mnt(),
		"MYSECURE_SOCKET="+filepath.Join(m.dir, "control.sock"),
		"MYSECURE_AUDIT_LOG="+filepath.Join(m.dir, "access.log"),
		"MYSECURE_LOG_FILE="+filepath.Join(m.dir, "daemon.log"),
	), m.extraEnv...)
}

func (m *mysecureFS) creds() []string {
	return []string{"--passphrase-file", filepath.Join(m.dir, "pass"), "--salt-file", filepath.Join(m.dir, "salt")}
}

// ms runs bin/mysecure with this volume's environment.
func (m *mysecureFS) ms(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, m.bin, args...)
	cmd.Env = m.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("mysecure %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// rulePrograms are the programs the workloads run in @mysql.
var rulePrograms = []string{"dd", "cp", "cat", "rm", "mariadbd"}

func (m *mysecureFS) setup(ctx context.Context) error {
	for _, d := range []string{"store", "mnt"} {
		if err := os.MkdirAll(filepath.Join(m.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(m.dir, "pass"), []byte("compare-passphrase\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(m.dir, "salt"), []byte("compare-salt\n"), 0o600); err != nil {
		return err
	}
	// A cheap KDF: unlocking is not what is measured.
	if _, err := m.ms(ctx, append([]string{"init", "--kdf-memory", "8", "--kdf-time", "1"}, m.creds()...)...); err != nil {
		return err
	}
	if err := m.mount(ctx); err != nil {
		return err
	}
	if !m.admin {
		for _, p := range rulePrograms {
			path, err := lookPath(p)
			if err != nil {
				return err
			}
			if _, err := m.ms(ctx, append([]string{"acl", "add", "ALLOW @mysql * " + path}, m.creds()...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *mysecureFS) mount(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ms(ctx, append([]string{"mount"}, m.creds()...)...); err != nil {
		return err
	}
	out, err := m.ms(ctx, "status", "--json")
	if err != nil {
		return err
	}
	var st struct {
		Pid  int    `json:"pid"`
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Pid == 0 {
		return fmt.Errorf("unexpected status output: %q", out)
	}
	m.pid = st.Pid
	m.dev = mountConn(m.mnt())
	// The mode is not persisted: every new daemon starts enforcing.
	if m.admin {
		if _, err := m.ms(ctx, append([]string{"mode", "set", "admin"}, m.creds()...)...); err != nil {
			return err
		}
	}
	return nil
}

// unmount unmounts whatever is mounted (a mount interrupted by Ctrl-C
// may have mounted without this program learning the pid).
func (m *mysecureFS) unmount(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pid != 0 {
		m.rt.sample(m.pid, "unmount")
	}
	if isMountpoint(m.mnt()) {
		if _, err := m.ms(ctx, "umount"); err != nil {
			// Busy (a killed child still on its way out): detach; the
			// daemon exits when the last reference goes.
			if err2 := unix.Unmount(m.mnt(), unix.MNT_DETACH); err2 != nil {
				return fmt.Errorf("%v; umount -l: %v", err, err2)
			}
		}
	}
	if m.pid != 0 {
		waitGone(m.pid, 30*time.Second)
	}
	m.pid, m.dev = 0, 0
	return nil
}

func (m *mysecureFS) remount(ctx context.Context, drop bool) error {
	if err := m.unmount(ctx); err != nil {
		return err
	}
	if drop {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	return m.mount(ctx)
}

func (m *mysecureFS) close(ctx context.Context) error { return m.unmount(ctx) }

// ---- FUSE servers run in the foreground: gocryptfs, and references ----

// fgFS is a FUSE file system whose server this program runs in the
// foreground (its pid gives CPU and RSS): gocryptfs with its default
// options, and two servers without encryption that show what any FUSE
// server costs here (gofuse-loopback: go-fuse's own example/loopback, the
// library mysecure is built on; bindfs: a C passthrough over libfuse, from
// Debian).
type fgFS struct {
	tname string
	dir   string
	// init prepares the backing directory (nil: nothing to do).
	init func(ctx context.Context, backing string) error
	// command is the server's command line, in the foreground.
	command func(backing, mnt string) []string
	rt      rssTracker

	mu   sync.Mutex // mount and unmount: the main goroutine and a signal's cleanup
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	pid  int
	dev  uint32
}

func newGocryptFS(dir string) *fgFS {
	return &fgFS{tname: "gocryptfs", dir: dir,
		init: func(ctx context.Context, cipher string) error {
			// -scryptn 10: a cheap KDF, as for mysecure.
			out, err := exec.CommandContext(ctx, "gocryptfs", "-init", "-q", "-nosyslog", "-extpass", "echo compare-passphrase", "-scryptn", "10", cipher).CombinedOutput()
			if err != nil {
				return fmt.Errorf("gocryptfs -init: %v: %s", err, out)
			}
			return nil
		},
		// Defaults, plus -allow_other: mariadbd runs as mysql.
		command: func(cipher, mnt string) []string {
			return []string{"gocryptfs", "-fg", "-q", "-nosyslog", "-allow_other", "-extpass", "echo compare-passphrase", cipher, mnt}
		}}
}

// newLoopbackFS runs bin, go-fuse's example/loopback built by compare.sh,
// with its defaults plus -allow-other.
func newLoopbackFS(dir, bin string) *fgFS {
	return &fgFS{tname: "gofuse-loopback", dir: dir,
		command: func(orig, mnt string) []string { return []string{bin, "-q", "-allow-other", mnt, orig} }}
}

// newBindFS runs bindfs multithreaded (its default is one thread), plus
// allow_other.
func newBindFS(dir string) *fgFS {
	return &fgFS{tname: "bindfs", dir: dir,
		command: func(orig, mnt string) []string {
			return []string{"bindfs", "-f", "--multithreaded", "-o", "allow_other", orig, mnt}
		}}
}

func (g *fgFS) name() string     { return g.tname }
func (g *fgFS) mnt() string      { return filepath.Join(g.dir, "mnt") }
func (g *fgFS) backing() string  { return filepath.Join(g.dir, "backing") }
func (g *fgFS) data() string     { return filepath.Join(g.mnt(), "mysql") }
func (g *fgFS) serverPid() int   { return g.pid }
func (g *fgFS) conn() uint32     { return g.dev }
func (g *fgFS) rss() *rssTracker { return &g.rt }

func (g *fgFS) setup(ctx context.Context) error {
	for _, d := range []string{g.backing(), g.mnt()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if g.init != nil {
		if err := g.init(ctx, g.backing()); err != nil {
			return err
		}
	}
	if err := g.mount(ctx); err != nil {
		return err
	}
	return os.MkdirAll(g.data(), 0o755)
}

func (g *fgFS) mount(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	argv := g.command(g.backing(), g.mnt())
	g.cmd = exec.Command(argv[0], argv[1:]...)
	g.out = &syncBuffer{}
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	// Its own process group: a Ctrl-C reaches this program, which unmounts.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		return err
	}
	g.pid = g.cmd.Process.Pid
	g.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(g.cmd, g.done)
	deadline := time.Now().Add(30 * time.Second)
	for !isMountpoint(g.mnt()) {
		select {
		case err := <-g.done:
			g.pid, g.done = 0, nil
			return fmt.Errorf("%s exited before mounting (%v): %s", g.tname, err, g.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not mount within 30 s", g.tname)
		}
	}
	g.dev = mountConn(g.mnt())
	return nil
}

func (g *fgFS) unmount(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pid != 0 {
		g.rt.sample(g.pid, "unmount")
	}
	if isMountpoint(g.mnt()) {
		if err := unix.Unmount(g.mnt(), 0); err != nil {
			if err2 := unix.Unmount(g.mnt(), unix.MNT_DETACH); err2 != nil {
				return fmt.Errorf("umount: %v; umount -l: %v", err, err2)
			}
		}
	} else if g.done != nil {
		// Interrupted before it mounted.
		_ = g.cmd.Process.Kill()
	}
	if g.done != nil {
		select {
		case <-g.done:
		case <-time.After(30 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
	}
	g.pid, g.dev, g.done = 0, 0, nil
	return nil
}

func (g *fgFS) remount(ctx context.Context, drop bool) error {
	if err := g.unmount(ctx); err != nil {
		return err
	}
	if drop {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	return g.mount(ctx)
}

func (g *fgFS) close(ctx context.Context) error { return g.unmount(ctx) }

// ---- /proc helpers ----

// rssTracker keeps the largest VmHWM seen over all server instances of a
// target, and the step after which each new maximum was seen.
type rssTracker struct {
	mu        sync.Mutex
	peakKiB   int64
	peakStep  string
	instances map[int]bool
}

func (r *rssTracker) sample(pid int, step string) {
	if pid == 0 {
		return
	}
	hwm := procStatusKiB(pid, "VmHWM")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.instances == nil {
		r.instances = map[int]bool{}
	}
	r.instances[pid] = true
	if hwm > r.peakKiB {
		r.peakKiB, r.peakStep = hwm, step
	}
}

func (r *rssTracker) peak() (kib int64, step string, instances int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peakKiB, r.peakStep, len(r.instances)
}

// procStatusKiB returns a "kB" field of /proc/PID/status (0 if unknown).
func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return statusField(b, field)
}

// statusField is the number after "field:" in a /proc status file (a
// trailing " kB" ignored), 0 if absent.
func statusField(b []byte, field string) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times.
const clockTick = 100

// procCPU is the user+system CPU time of process pid (all threads).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick
}

// procCtxSwitches sums the voluntary and involuntary context switches of
// every thread of process pid (0 if unknown).
func procCtxSwitches(pid int) int64 {
	if pid == 0 {
		return 0
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		n += statusField(b, "voluntary_ctxt_switches") + statusField(b, "nonvoluntary_ctxt_switches")
	}
	return n
}

// cpuTimes is what a step needs from /proc/stat: busy and total jiffies
// (its first line) and the context switches since boot (ctxt).
type cpuTimes struct{ busy, total, ctxt int64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	lines := strings.Split(string(b), "\n")
	var t cpuTimes
	for i, s := range strings.Fields(lines[0])[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		if i >= 8 { // guest times are included in user already
			break
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	for _, line := range lines[1:] {
		if v, ok := strings.CutPrefix(line, "ctxt "); ok {
			t.ctxt, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			break
		}
	}
	return t
}

// waitGone waits until process pid has exited.
func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie (the detached daemon is not our child) counts as gone.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || bytes.Contains(b, []byte(") Z ")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func isMountpoint(p string) bool {
	for _, m := range mountPoints() {
		if m == p {
			return true
		}
	}
	return false
}

// mountsUnder lists mount points at or below dir.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range mountPoints() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// mountConn returns the FUSE connection number of the mount at p: FUSE
// mounts get an anonymous device (major 0), the connection is its minor.
func mountConn(p string) uint32 {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0
	}
	if unix.Major(st.Dev) != 0 {
		return 0
	}
	return unix.Minor(st.Dev)
}

// lookPath resolves a program to its real path (what /proc/PID/exe shows
// and what an access rule must name).
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		if q := "/usr/sbin/" + name; fileExists(q) {
			p = q
		} else {
			return "", fmt.Errorf("%s not found: %w", name, err)
		}
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Abs(p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// syncBuffer is a bytes.Buffer safe for a child's stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
