package acl

import (
	"errors"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

func TestIdentifySelf(t *testing.T) {
	id := NewIdentifier(IdentifierOptions{})
	p, err := id.Identify(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe.Path != exe {
		t.Errorf("Exe.Path = %q, want %q", p.Exe.Path, exe)
	}
	if want := sha256File(t, exe); p.Exe.SHA256 != want {
		t.Errorf("Exe.SHA256 = %s, want %s", p.Exe.SHA256, want)
	}
	if p.Pid != os.Getpid() || p.PPid != os.Getppid() || p.Uid != uint32(os.Getuid()) {
		t.Errorf("Identify = pid %d ppid %d uid %d, want %d %d %d", p.Pid, p.PPid, p.Uid, os.Getpid(), os.Getppid(), os.Getuid())
	}
	if p.Script != nil {
		t.Errorf("Script filled before LoadScript: %#v", p.Script)
	}
}

func TestIdentifyChild(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "sleep-copy")
	copyExe(t, realPath(t, "sleep"), prog)
	pid := startSleep(t, prog)

	id := NewIdentifier(IdentifierOptions{})
	p, err := id.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe.Path != prog {
		t.Errorf("Exe.Path = %q, want %q", p.Exe.Path, prog)
	}
	if want := sha256File(t, prog); p.Exe.SHA256 != want {
		t.Errorf("Exe.SHA256 = %s, want %s", p.Exe.SHA256, want)
	}
	if p.PPid != os.Getpid() {
		t.Errorf("PPid = %d, want %d", p.PPid, os.Getpid())
	}
	parent, err := id.Parent(p)
	if err != nil {
		t.Fatal(err)
	}
	if parent.Pid != os.Getpid() {
		t.Errorf("Parent = %d, want %d", parent.Pid, os.Getpid())
	}
	// "sleep 30": 30 would be the script, but it is no file.
	script, err := p.LoadScript()
	if err == nil || script != nil || p.Script != nil {
		t.Errorf("LoadScript of sleep 30 = %#v, %v; want nil and an error", script, err)
	}

	// The program is deleted while running: same path, same fingerprint.
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	p2, err := id.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Exe != p.Exe {
		t.Errorf("deleted program identified as %#v, want %#v", p2.Exe, p.Exe)
	}
}

func TestIdentifyCache(t *testing.T) {
	t.Run("old file is hashed once", func(t *testing.T) {
		// /usr/bin/sleep was installed long ago: cacheable right away.
		id := NewIdentifier(IdentifierOptions{})
		pid := startSleep(t, realPath(t, "sleep"))
		if _, err := id.Identify(pid); err != nil {
			t.Fatal(err)
		}
		n := id.Hashes()
		if n != 1 {
			t.Fatalf("Hashes = %d after the first Identify, want 1", n)
		}
		for range 3 {
			if _, err := id.Identify(pid); err != nil {
				t.Fatal(err)
			}
		}
		if id.Hashes() != n {
			t.Errorf("Hashes grew from %d to %d on a cached binary", n, id.Hashes())
		}
		other := startSleep(t, realPath(t, "sleep"))
		if _, err := id.Identify(other); err != nil {
			t.Fatal(err)
		}
		if id.Hashes() != n {
			t.Errorf("a second process of the same binary was hashed again")
		}
	})
	t.Run("fresh file is not cached", func(t *testing.T) {
		dir := t.TempDir()
		prog := filepath.Join(dir, "fresh")
		copyExe(t, realPath(t, "sleep"), prog)
		pid := startSleep(t, prog)
		id := NewIdentifier(IdentifierOptions{})
		for range 2 {
			if _, err := id.Identify(pid); err != nil {
				t.Fatal(err)
			}
		}
		if id.Hashes() != 2 {
			t.Errorf("Hashes = %d, want 2: a file changed less than %v ago must not be cached", id.Hashes(), defaultMinCacheAge)
		}
	})
	t.Run("rewritten file is hashed again", func(t *testing.T) {
		dir := t.TempDir()
		prog := filepath.Join(dir, "prog")
		copyExe(t, realPath(t, "sleep"), prog)
		id := NewIdentifier(IdentifierOptions{})
		id.minCacheAge = 0
		pid := startSleep(t, prog)
		first, err := id.Identify(pid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := id.Identify(pid); err != nil {
			t.Fatal(err)
		}
		if id.Hashes() != 1 {
			t.Fatalf("Hashes = %d after two Identify, want 1", id.Hashes())
		}

		// touch: same content, new mtime and ctime.
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(prog, later, later); err != nil {
			t.Fatal(err)
		}
		again, err := id.Identify(pid)
		if err != nil {
			t.Fatal(err)
		}
		if id.Hashes() != 2 {
			t.Errorf("Hashes = %d after touch, want 2", id.Hashes())
		}
		if again.Exe.SHA256 != first.Exe.SHA256 {
			t.Errorf("touch changed the fingerprint")
		}

		// modify: a running program cannot be written, so start it anew.
		copyExe(t, realPath(t, "sleep"), filepath.Join(dir, "new"))
		appendByte(t, filepath.Join(dir, "new"))
		if err := os.Rename(filepath.Join(dir, "new"), prog); err != nil {
			t.Fatal(err)
		}
		modified, err := id.Identify(startSleep(t, prog))
		if err != nil {
			t.Fatal(err)
		}
		if id.Hashes() != 3 {
			t.Errorf("Hashes = %d after modification, want 3", id.Hashes())
		}
		if modified.Exe.SHA256 == first.Exe.SHA256 || modified.Exe.SHA256 != sha256File(t, prog) {
			t.Errorf("modified program has fingerprint %s", modified.Exe.SHA256)
		}
		// The old process still runs the old (now deleted) file.
		old, err := id.Identify(pid)
		if err != nil {
			t.Fatal(err)
		}
		if old.Exe != first.Exe {
			t.Errorf("old process identified as %#v, want %#v", old.Exe, first.Exe)
		}
	})
	t.Run("Fingerprint shares the cache", func(t *testing.T) {
		id := NewIdentifier(IdentifierOptions{})
		sleep := realPath(t, "sleep")
		sum, err := id.Fingerprint(sleep)
		if err != nil {
			t.Fatal(err)
		}
		if sum != sha256File(t, sleep) {
			t.Errorf("Fingerprint = %s", sum)
		}
		if _, err := id.Identify(startSleep(t, sleep)); err != nil {
			t.Fatal(err)
		}
		if id.Hashes() != 1 {
			t.Errorf("Hashes = %d, want 1", id.Hashes())
		}
	})
}

func TestIdentifyGone(t *testing.T) {
	id := NewIdentifier(IdentifierOptions{})
	t.Run("no such pid", func(t *testing.T) {
		data, err := os.ReadFile("/proc/sys/kernel/pid_max")
		if err != nil {
			t.Fatal(err)
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = id.Identify(max + 1)
		if !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Identify(pid_max+1): %v, want ErrProcessGone", err)
		}
	})
	t.Run("exited and reaped", func(t *testing.T) {
		cmd := exec.Command(realPath(t, "true"))
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if _, err := id.Identify(cmd.Process.Pid); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Identify of an exited process: %v, want ErrProcessGone", err)
		}
	})
	t.Run("zombie", func(t *testing.T) {
		cmd := exec.Command(realPath(t, "true"))
		pid := start(t, cmd)
		waitState(t, pid, "Z")
		if _, err := id.Identify(pid); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Identify of a zombie: %v, want ErrProcessGone", err)
		}
	})
	t.Run("invalid pid", func(t *testing.T) {
		if _, err := id.Identify(0); err == nil {
			t.Fatal("Identify(0) succeeded")
		}
	})
}

// waitState waits until the state letter in /proc/PID/stat is state.
func waitState(t testing.TB, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if f[0] == state {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d never reached state %s", pid, state)
}

// fakeProc builds a procfs-like tree for pid 4242 under a temp dir.
type fakeProc struct {
	root, dir string
}

func newFakeProc(t *testing.T, comm string, start uint64) *fakeProc {
	t.Helper()
	root := t.TempDir()
	fp := &fakeProc{root: root, dir: filepath.Join(root, "4242")}
	if err := os.Mkdir(fp.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fp.setStat(t, comm, start)
	writeFile(t, filepath.Join(fp.dir, "status"), []byte("Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t77\nUid:\t1001\t1002\t1003\t1004\nGid:\t5\t5\t5\t5\n"))
	return fp
}

func (fp *fakeProc) setStat(t *testing.T, comm string, start uint64) {
	t.Helper()
	f := make([]string, 50)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[19] = "S", "77", strconv.FormatUint(start, 10)
	writeFile(t, filepath.Join(fp.dir, "stat"), []byte("4242 ("+comm+") "+strings.Join(f, " ")+"\n"))
}

func (fp *fakeProc) link(t *testing.T, name, target string) {
	t.Helper()
	p := filepath.Join(fp.dir, name)
	_ = os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestIdentifyFakeProc(t *testing.T) {
	files := t.TempDir()
	exe := filepath.Join(files, "prog")
	writeFile(t, exe, []byte("program one"))
	other := filepath.Join(files, "other")
	writeFile(t, other, []byte("program two"))

	t.Run("comm with spaces and parentheses", func(t *testing.T) {
		fp := newFakeProc(t, "a) b (c) 1 2 3", 1000)
		fp.link(t, "exe", exe)
		p, err := NewIdentifier(IdentifierOptions{ProcRoot: fp.root}).Identify(4242)
		if err != nil {
			t.Fatal(err)
		}
		if p.PPid != 77 || p.Uid != 1001 || p.startTime != 1000 || p.Exe.Path != exe || p.Exe.SHA256 != sha256File(t, exe) {
			t.Errorf("Identify = %#v", p)
		}
	})
	t.Run("pid reused while identifying", func(t *testing.T) {
		fp := newFakeProc(t, "x", 1000)
		fp.link(t, "exe", exe)
		id := NewIdentifier(IdentifierOptions{ProcRoot: fp.root, HashInMount: func(string, *unix.Stat_t) (string, bool, error) {
			fp.setStat(t, "x", 2000) // the process exits, another gets its pid
			return "", false, nil
		}})
		if _, err := id.Identify(4242); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Identify: %v, want ErrProcessGone", err)
		}
	})
	t.Run("exec while identifying", func(t *testing.T) {
		fp := newFakeProc(t, "x", 1000)
		fp.link(t, "exe", exe)
		id := NewIdentifier(IdentifierOptions{ProcRoot: fp.root, HashInMount: func(string, *unix.Stat_t) (string, bool, error) {
			fp.link(t, "exe", other)
			return "", false, nil
		}})
		if _, err := id.Identify(4242); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Identify: %v, want ErrProcessGone", err)
		}
	})
	t.Run("HashInMount owns the program", func(t *testing.T) {
		fp := newFakeProc(t, "x", 1000)
		mnt := filepath.Join(files, "mnt", "mysecure")
		prog := filepath.Join(mnt, "protected", "usr", "sbin", "mysqld")
		os.MkdirAll(filepath.Dir(prog), 0o755)
		writeFile(t, prog, []byte("the plaintext is hashed by the owner, not here"))
		fp.link(t, "exe", prog)
		sum := strings.Repeat("ab", 32)
		id := NewIdentifier(IdentifierOptions{ProcRoot: fp.root, HashInMount: func(p string, st *unix.Stat_t) (string, bool, error) {
			if strings.HasPrefix(p, mnt+"/") {
				if st == nil {
					return "", true, errors.New("Identify must pass the stat of the executing file")
				}
				return sum, true, nil
			}
			return "", false, nil
		}})
		p, err := id.Identify(4242)
		if err != nil {
			t.Fatal(err)
		}
		if p.Exe.SHA256 != sum || id.Hashes() != 0 {
			t.Errorf("Identify = %#v, Hashes %d", p.Exe, id.Hashes())
		}
	})
	t.Run("HashInMount error", func(t *testing.T) {
		fp := newFakeProc(t, "x", 1000)
		fp.link(t, "exe", exe)
		id := NewIdentifier(IdentifierOptions{ProcRoot: fp.root, HashInMount: func(string, *unix.Stat_t) (string, bool, error) {
			return "", false, errors.New("boom")
		}})
		if _, err := id.Identify(4242); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("Identify: %v, want the HashInMount error", err)
		}
	})
	t.Run("scripts", func(t *testing.T) {
		script := filepath.Join(files, "job.sh")
		writeScript(t, script, "echo hi")
		fifo := filepath.Join(files, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			cmdline []string
			want    string // script path; "" for none
			wantErr bool
		}{
			{"absolute", []string{"/bin/bash", script}, script, false},
			{"shebang option", []string{"/bin/bash", "-e", script, "arg"}, script, false},
			{"relative to cwd", []string{"bash", "job.sh"}, script, false},
			{"unclean", []string{"bash", files + "//./job.sh"}, script, false},
			{"after --", []string{"bash", "--", script}, script, false},
			{"no argument", []string{"bash"}, "", false},
			{"only options", []string{"bash", "-e", "--norc"}, "", false},
			{"stdin", []string{"bash", "-s", script}, "", true},
			{"command string", []string{"bash", "-c", "cat /secret", script}, "", true},
			{"interactive", []string{"python3", "-i", script}, "", true},
			{"dash", []string{"python3", "-", script}, "", true},
			{"rcfile", []string{"bash", "--rcfile", script, "-i"}, "", true},
			{"option value", []string{"python3", "-W", script, "/tmp/evil.py"}, "", true},
			{"missing file", []string{"bash", "nothere.sh"}, "", true},
			{"fifo", []string{"bash", fifo}, "", true},
			{"directory", []string{"bash", files}, "", true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fp := newFakeProc(t, "bash", 1000)
				fp.link(t, "exe", exe)
				fp.link(t, "cwd", files)
				fp.link(t, "root", "/")
				writeFile(t, filepath.Join(fp.dir, "cmdline"), []byte(strings.Join(tt.cmdline, "\x00")+"\x00"))
				p, err := NewIdentifier(IdentifierOptions{ProcRoot: fp.root}).Identify(4242)
				if err != nil {
					t.Fatal(err)
				}
				got, err := p.LoadScript()
				if (err != nil) != tt.wantErr {
					t.Fatalf("LoadScript error = %v, want error %v", err, tt.wantErr)
				}
				if tt.want == "" {
					if got != nil || p.Script != nil {
						t.Fatalf("LoadScript = %#v, want none", got)
					}
					return
				}
				if got == nil || got.Path != tt.want || got.SHA256 != sha256File(t, tt.want) || p.Script != got {
					t.Fatalf("LoadScript = %#v, want %s", got, tt.want)
				}
			})
		}
	})
}

func TestFillRule(t *testing.T) {
	id := NewIdentifier(IdentifierOptions{})
	sleep, bash := realPath(t, "sleep"), realPath(t, "bash")
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	writeScript(t, script, "true")
	link := filepath.Join(dir, "link.sh")
	if err := os.Symlink(script, link); err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, "ALLOW @mysql * "+link+" --shell=/bin/bash --children=/bin/sleep")
	if err := id.FillRule(&r); err != nil {
		t.Fatal(err)
	}
	if r.Exe.Path != link || r.Exe.SHA256 != sha256File(t, script) {
		t.Errorf("script = %#v: must keep its path", r.Exe)
	}
	if r.Shell.Path != bash || r.Shell.SHA256 != sha256File(t, bash) {
		t.Errorf("shell = %#v, want %s resolved", r.Shell, bash)
	}
	if len(r.Children) != 1 || r.Children[0].Path != sleep || r.Children[0].SHA256 != sha256File(t, sleep) {
		t.Errorf("children = %#v", r.Children)
	}
	bad := mustParse(t, "ALLOW @mysql * "+filepath.Join(dir, "missing"))
	if err := id.FillRule(&bad); err == nil {
		t.Error("FillRule of a missing program succeeded")
	}
}

// BenchmarkIdentify measures Identify on a cache hit: the common path of
// every open through the mount.
func BenchmarkIdentify(b *testing.B) {
	testenv.RequireCommands(b, "sleep")
	id := NewIdentifier(IdentifierOptions{})
	pid := startSleep(b, realPath(b, "sleep")) // an old file: cacheable
	if _, err := id.Identify(pid); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := id.Identify(pid); err != nil {
			b.Fatal(err)
		}
	}
	if id.Hashes() != 1 {
		b.Fatalf("Hashes = %d: the benchmark missed the cache", id.Hashes())
	}
}
