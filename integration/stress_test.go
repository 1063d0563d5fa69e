package integration

// The stress tests (issue 20): soak, faults below the store, crash points,
// leak scans. They run only when MYSECURE_STRESS is set: `make stress`
// (short, in CI after `make test`) sets it to "short", `make stress-long`
// (before a release) to "long". docs/reliability.md has the figures.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// stressLevel is "short" or "long"; without MYSECURE_STRESS the test skips
// (a plain skip: `make test` does not run stress tests, `make stress` does).
func stressLevel(t *testing.T) string {
	t.Helper()
	switch v := os.Getenv("MYSECURE_STRESS"); v {
	case "short", "long":
		testenv.RequireRoot(t)
		testenv.RequireFUSE(t)
		return v
	case "":
		t.Skip("stress test: run by 'make stress' (MYSECURE_STRESS=short) or 'make stress-long' (MYSECURE_STRESS=long)")
	default:
		t.Fatalf("MYSECURE_STRESS=%q: want short or long", v)
	}
	return ""
}

// pick returns short or long for the level.
func pick[T any](level string, short, long T) T {
	if level == "long" {
		return long
	}
	return short
}

// stressDuration is MYSECURE_STRESS_DURATION when set (a Go duration),
// else def: a way to run one stress test longer without the whole long form.
func stressDuration(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("MYSECURE_STRESS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MYSECURE_STRESS_DURATION=%q: %v", v, err)
		}
		return d
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newStressEnv makes a volume at store whose passphrase and salt are unique
// to this run, so a leak scan can look for them anywhere on the machine.
// dir holds the credential files (and nothing else of the volume).
func newStressEnv(t *testing.T, dir, store string) (*env, []string) {
	t.Helper()
	pass, salt := "stress-pass-"+randHex(12), "stress-salt-"+randHex(12)
	e := &env{t: t, dir: dir, store: store, state: filepath.Join(dir, "state")}
	os.WriteFile(filepath.Join(dir, "pass"), []byte(pass+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "salt"), []byte(salt+"\n"), 0o600)
	e.creds = []string{"--passphrase-file", filepath.Join(dir, "pass"), "--salt-file", filepath.Join(dir, "salt")}
	e.run(0, nil, nil, append([]string{"init", "--kdf-memory", "8", "--kdf-time", "1"}, e.creds...)...)
	return e, []string{pass, salt}
}

// daemonPid is the pid status --json reports.
func (m *mountEnv) daemonPid() int {
	m.t.Helper()
	var s struct{ Pid int }
	if err := json.Unmarshal([]byte(m.ms(0, "status", "--json")), &s); err != nil || s.Pid == 0 {
		m.t.Fatalf("status --json: pid %d %v", s.Pid, err)
	}
	return s.Pid
}

// resources is one sample of the daemon's footprint.
type resources struct {
	At         time.Duration
	RSSKiB     int
	Threads    int
	FDs        int // all descriptors
	StoreFDs   int // descriptors of files and directories in the store
	Goroutines int
}

// sampleDaemon reads VmRSS and Threads from /proc/PID/status, counts
// /proc/PID/fd and asks the daemon for its goroutine count.
func (m *mountEnv) sampleDaemon(pid int, since time.Time) resources {
	m.t.Helper()
	r := resources{At: time.Since(since).Round(time.Second)}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		m.t.Fatalf("daemon %d gone: %v", pid, err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "VmRSS:":
			r.RSSKiB, _ = strconv.Atoi(fs[1])
		case "Threads:":
			r.Threads, _ = strconv.Atoi(fs[1])
		}
	}
	f.Close()
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	r.FDs = len(fds)
	for _, fd := range fds {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if strings.HasPrefix(l, m.store+"/") {
			r.StoreFDs++
		}
	}
	var s struct{ Goroutines int }
	if err := json.Unmarshal([]byte(m.ms(0, "status", "--json")), &s); err != nil || s.Goroutines == 0 {
		m.t.Fatalf("status --json has no goroutine count: %v", err)
	}
	r.Goroutines = s.Goroutines
	return r
}

// leakWatch samples every process's cmdline and environ while stress runs
// and records any that hold a secret.
type leakWatch struct {
	secrets []string
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	hits    []string
	rounds  int
	files   int
}

func watchLeaks(secrets ...string) *leakWatch {
	w := &leakWatch{secrets: secrets, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			pids, _ := filepath.Glob("/proc/[0-9]*")
			n := 0
			for _, p := range pids {
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile(filepath.Join(p, f))
					if err != nil {
						continue
					}
					n++
					for _, s := range w.secrets {
						if bytes.Contains(b, []byte(s)) {
							w.mu.Lock()
							w.hits = append(w.hits, p+"/"+f+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
							w.mu.Unlock()
						}
					}
				}
			}
			w.mu.Lock()
			w.rounds++
			w.files += n
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the watch and fails on a hit; it returns how many rounds
// and /proc files it read.
func (w *leakWatch) finish(t *testing.T) (rounds, files int) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.hits) > 0 {
		t.Errorf("secret found in /proc:\n%s", strings.Join(w.hits, "\n"))
	}
	if w.rounds < 2 {
		t.Errorf("the /proc leak watch ran %d rounds: it proves nothing", w.rounds)
	}
	return w.rounds, w.files
}

// scanLeaks looks for the secrets in the store (contents and names), the
// daemon and audit logs, core files in the test directory, and files
// under /tmp changed since start (other mounts are not entered). It
// returns how many files it read.
func scanLeaks(t *testing.T, m *mountEnv, start time.Time, secrets ...string) int {
	t.Helper()
	n := 0
	check := func(p string, b []byte) {
		n++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) || strings.Contains(p, s) {
				t.Errorf("leak: %q found in %s", s, p)
			}
		}
	}
	walk := func(root string, onlyNew bool) {
		var dev uint64
		if st, err := os.Stat(root); err == nil {
			dev = st.Sys().(*syscall.Stat_t).Dev
		}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			if fi.IsDir() && fi.Sys().(*syscall.Stat_t).Dev != dev {
				return filepath.SkipDir // another mount (ours or someone else's)
			}
			if !fi.Mode().IsRegular() || fi.Size() > 256<<20 || (onlyNew && fi.ModTime().Before(start)) {
				return nil
			}
			// The credential files themselves hold the secrets.
			if p == filepath.Join(m.dir, "pass") || p == filepath.Join(m.dir, "salt") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err == nil {
				check(p, b)
			}
			return nil
		})
	}
	walk(m.store, false)
	for _, p := range []string{m.log, m.audit} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("log %s: %v", p, err)
			continue
		}
		check(p, b)
	}
	cores, _ := filepath.Glob(filepath.Join(m.dir, "core*"))
	if len(cores) > 0 {
		t.Errorf("core files left: %v", cores)
	}
	walk(os.TempDir(), true)
	return n
}
