package inplace

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/testenv"

	"github.com/mysecure/mysecure/internal/procfs"
)

func TestEncryptDecryptRoundTrip(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		build func(*testing.T, string)
	}{
		{"tree", buildTree},
		{"single file", buildFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.build(t, e.path)
			orig := takeSnapshot(t, e.path)
			ctx := context.Background()

			if err := Encrypt(ctx, e.path, e.dst, e.o); err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			assertEncrypted(t, e, orig)

			// The destination's parents below the category copy the mode
			// of PATH's parents.
			parent := e.catRoot + filepath.Dir(e.path)
			st, err := lstat(parent)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != 0o711 {
				t.Errorf("%s has mode %04o, want 0711 like %s", parent, st.Mode&0o7777, filepath.Dir(e.path))
			}

			if tt.name == "tree" {
				// Holes stay holes: 4 KiB of data in a 1 MiB file.
				st, err := lstat(filepath.Join(e.dst, "sparse"))
				if err != nil {
					t.Fatal(err)
				}
				if st.Blocks*512 >= 1<<20 {
					t.Errorf("sparse file copied with %d bytes allocated", st.Blocks*512)
				}
			}

			err = Encrypt(ctx, e.path, e.dst, e.o)
			mustErrorIs(t, err, ErrAlreadyEncrypted)

			if err := Decrypt(ctx, e.path, e.dst, e.o); err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			assertPlain(t, e, orig)

			err = Decrypt(ctx, e.path, e.dst, e.o)
			mustErrorIs(t, err, ErrNotEncrypted)

			lines, err := Recover(e.o)
			if err != nil || len(lines) != 0 {
				t.Errorf("Recover after clean jobs = %q, %v; want nothing", lines, err)
			}
		})
	}
}

// startHolder starts `sleep 30` with stdin from file (or its working
// directory in dir when file is empty) and kills it at cleanup.
func startHolder(t *testing.T, file, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestRefusals(t *testing.T) {
	requireRoot(t)
	type setupFn func(t *testing.T, e *env) (path, dst string)
	plain := func(t *testing.T, e *env) (string, string) { return e.path, e.dst }
	tests := []struct {
		name    string
		msg     string // in the error message
		decrypt bool
		setup   setupFn
		want    error
		check   func(t *testing.T, e *env, err error)
	}{
		{name: "relative path", msg: "is not an absolute path", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return "data/src", e.dst
		}},
		{name: "unclean path", msg: "is not a clean path", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return e.path + "/../src", e.dst
		}},
		{name: "root", msg: "cannot be /", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return "/", e.dst
		}},
		{name: "system directory", msg: "is a system directory", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return "/var", e.catRoot + "/var"
		}},
		{name: "relative destination", msg: "destination \"mnt/x\" is not an absolute path", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return e.path, "mnt/x"
		}},
		{name: "symlink into the mount", msg: "is a symlink to", want: ErrAlreadyEncrypted, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(filepath.Dir(e.path), "other")
			if err := os.Symlink(e.catRoot+"/somewhere", p); err != nil {
				t.Fatal(err)
			}
			return p, e.catRoot + p
		}},
		{name: "symlink elsewhere", msg: "encrypt what it points to", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(filepath.Dir(e.path), "other")
			if err := os.Symlink(e.path, p); err != nil {
				t.Fatal(err)
			}
			return p, e.catRoot + p
		}},
		{name: "inside the mount", msg: "is inside the encrypted mount", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(e.catRoot, "inside")
			mkdirAll(t, p)
			return p, e.catRoot + "/elsewhere"
		}},
		{name: "inside the store", msg: "is inside the ciphertext store", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(e.store, "inside")
			mkdirAll(t, p)
			return p, e.catRoot + p
		}},
		{name: "contains the mount", msg: "contains the encrypted mount", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.MountDir = filepath.Join(e.path, "a")
			return e.path, e.dst
		}},
		{name: "contains the store", msg: "contains the ciphertext store", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.StoreDir = filepath.Join(e.path, "a", "b")
			return e.path, e.dst
		}},
		{name: "mount not mounted", msg: "is not mounted", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.MountDir = filepath.Join(e.base, "unmounted")
			mkdirAll(t, e.o.MountDir)
			return e.path, e.o.MountDir + e.path
		}},
		{name: "destination outside the mount", msg: "is not inside the encrypted mount", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			return e.path, filepath.Join(e.base, "elsewhere")
		}},
		{name: "destination inside the store", msg: "(it would be written unencrypted)", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.StoreDir = e.catRoot
			return e.path, e.dst
		}},
		{name: "destination inside PATH", msg: "overlap", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.MountDir = ""
			return e.path, filepath.Join(e.path, "a", "copy")
		}},
		{name: "journal inside PATH", msg: "the journal directory", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			e.o.JournalDir = filepath.Join(e.path, "journal")
			return e.path, e.dst
		}},
		{name: "destination exists", msg: "already exists", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			mkdirAll(t, e.dst)
			return e.path, e.dst
		}},
		{name: "fifo", msg: "is a fifo; special files cannot be moved", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			if err := unix.Mkfifo(filepath.Join(e.path, "a", "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			return e.path, e.dst
		}},
		{name: "socket", msg: "is a socket", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			l, err := net.Listen("unix", filepath.Join(e.path, "a", "sock"))
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
			return e.path, e.dst
		}},
		{name: "device", msg: "is a character device", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			if err := unix.Mknod(filepath.Join(e.path, "null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
				testenv.Missing(t, "mknod", err.Error())
			}
			return e.path, e.dst
		}},
		{name: "hard link outside PATH", msg: "1 of them outside", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			if err := os.Link(filepath.Join(e.path, "a", "b", "one"), filepath.Join(e.base, "outside")); err != nil {
				t.Fatal(err)
			}
			return e.path, e.dst
		}},
		{name: "mount point", msg: "is a mount point", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(e.base, "data", "mounted")
			mountFS(t, "tmpfs", p, "size=1m")
			writeFile(t, filepath.Join(p, "f"), []byte("x"), 0o644)
			return p, e.catRoot + p
		}},
		{name: "contains a mount point", msg: "contains the mount point", want: ErrRefused, setup: func(t *testing.T, e *env) (string, string) {
			mountFS(t, "tmpfs", filepath.Join(e.path, "empty"), "size=1m")
			return e.path, e.dst
		}},
		{name: "not enough space", msg: "the copy needs about", want: unix.ENOSPC, setup: func(t *testing.T, e *env) (string, string) {
			mountFS(t, "tmpfs", e.mount, "size=256k")
			mkdirAll(t, e.catRoot)
			big := make([]byte, 1<<20)
			for i := range big {
				big[i] = byte(i)
			}
			writeFile(t, filepath.Join(e.path, "huge"), big, 0o644)
			return e.path, e.dst
		}, check: func(t *testing.T, e *env, err error) {
			mustErrorIs(t, err, ErrRefused)
		}},
		{name: "open file", msg: "is open by pid", want: ErrInUse, setup: func(t *testing.T, e *env) (string, string) {
			startHolder(t, filepath.Join(e.path, "a", "b", "big"), "")
			return e.path, e.dst
		}, check: func(t *testing.T, e *env, err error) {
			var iu *InUseError
			if !errors.As(err, &iu) {
				t.Fatalf("err = %T %v, want *InUseError", err, err)
			}
			if iu.Path != filepath.Join(e.path, "a", "b", "big") || iu.Command != "sleep" || iu.Cwd {
				t.Errorf("InUseError = %+v", iu)
			}
			for _, s := range []string{"in use: " + iu.Path + " is open by pid", "(sleep)", "--force"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
		}},
		{name: "working directory", msg: "is the working directory of pid", want: ErrInUse, setup: func(t *testing.T, e *env) (string, string) {
			startHolder(t, "", filepath.Join(e.path, "a"))
			return e.path, e.dst
		}, check: func(t *testing.T, e *env, err error) {
			var iu *InUseError
			if !errors.As(err, &iu) || !iu.Cwd || iu.Command != "sleep" {
				t.Errorf("err = %v, want the working directory of sleep", err)
			}
		}},
		{name: "missing PATH", msg: "no such file", want: os.ErrNotExist, setup: func(t *testing.T, e *env) (string, string) {
			return filepath.Join(e.base, "data", "nope"), e.catRoot + "/nope"
		}},
		{name: "decrypt a directory", msg: "is not a symlink", decrypt: true, want: ErrNotEncrypted, setup: plain},
		{name: "decrypt a foreign symlink", msg: "points to", decrypt: true, want: ErrNotEncrypted, setup: func(t *testing.T, e *env) (string, string) {
			p := filepath.Join(filepath.Dir(e.path), "other")
			if err := os.Symlink(e.catRoot+"/elsewhere", p); err != nil {
				t.Fatal(err)
			}
			return p, e.catRoot + p
		}},
		{name: "busy", msg: "is locked", want: ErrBusy, setup: func(t *testing.T, e *env) (string, string) {
			unlock, err := lockJournal(e.o.JournalDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(unlock)
			return e.path, e.dst
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			buildTree(t, e.path)
			path, dst := tt.setup(t, e)
			before := takeSnapshot(t, e.path)
			var err error
			if tt.decrypt {
				err = Decrypt(context.Background(), path, dst, e.o)
			} else {
				err = Encrypt(context.Background(), path, dst, e.o)
			}
			t.Logf("error: %v", err)
			mustErrorIs(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if tt.check != nil {
				tt.check(t, e, err)
			}
			// Nothing was touched.
			compareSnapshots(t, "tree after refusal", before, takeSnapshot(t, e.path))
			if filepath.IsAbs(dst) && !strings.HasPrefix(tt.name, "destination exists") {
				if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("destination %s exists after refusal", dst)
				}
			}
			if ents, err := os.ReadDir(e.o.JournalDir); err == nil && len(ents) != 0 {
				t.Errorf("journal dir not empty: %v", names(ents))
			}
		})
	}
}

func TestForceInUse(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	buildTree(t, e.path)
	holder := startHolder(t, filepath.Join(e.path, "a", "b", "big"), filepath.Join(e.path, "a"))
	orig := takeSnapshot(t, e.path)
	err := Encrypt(context.Background(), e.path, e.dst, e.o)
	var iu *InUseError
	if !errors.As(err, &iu) || iu.PID != holder.Process.Pid {
		t.Fatalf("Encrypt = %v, want in use by pid %d", err, holder.Process.Pid)
	}
	e.o.Force = true
	if err := Encrypt(context.Background(), e.path, e.dst, e.o); err != nil {
		t.Fatalf("Encrypt with Force: %v", err)
	}
	assertEncrypted(t, e, orig)
}

func TestXattrNotSupportedOnDestination(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	buildTree(t, e.path)
	orig := takeSnapshot(t, e.path)
	mountFS(t, "ramfs", e.mount, "") // ramfs has no xattrs at all
	mkdirAll(t, e.catRoot)
	err := Encrypt(context.Background(), e.path, e.dst, e.o)
	t.Logf("error: %v", err)
	mustErrorIs(t, err, unix.ENOTSUP)
	if !strings.Contains(err.Error(), "does not support user.* extended attributes") {
		t.Errorf("error %q does not name the namespace", err)
	}
	assertPlain(t, e, orig)
}

func TestEncryptCanceled(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	buildTree(t, e.path)
	orig := takeSnapshot(t, e.path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testHookStep = func(s string) {
		if s == "encrypt:copy-partial" {
			cancel()
		}
	}
	defer func() { testHookStep = nil }()
	err := Encrypt(ctx, e.path, e.dst, e.o)
	mustErrorIs(t, err, context.Canceled)
	assertPlain(t, e, orig)
}

// A file written after its copy was made aborts the job: its write would
// otherwise be lost with the original.
func TestChangedDuringCopy(t *testing.T) {
	requireRoot(t)
	for _, decrypt := range []bool{false, true} {
		name := map[bool]string{false: "encrypt", true: "decrypt"}[decrypt]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			buildTree(t, e.path)
			if decrypt {
				if err := Encrypt(context.Background(), e.path, e.dst, e.o); err != nil {
					t.Fatal(err)
				}
			}
			victim := filepath.Join(e.path, "a", "b", "one")
			testHookStep = func(s string) {
				if s == name+":copied" {
					f, err := os.OpenFile(victim, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = f.WriteString("late write")
					f.Close()
				}
			}
			defer func() { testHookStep = nil }()
			err := func() error {
				if decrypt {
					return Decrypt(context.Background(), e.path, e.dst, e.o)
				}
				return Encrypt(context.Background(), e.path, e.dst, e.o)
			}()
			t.Logf("error: %v", err)
			mustErrorIs(t, err, ErrInUse)
			if !strings.Contains(err.Error(), "changed while it was being copied") {
				t.Errorf("error %q", err)
			}
			data, err := os.ReadFile(victim)
			if err != nil || string(data) != "1late write" {
				t.Errorf("victim = %q, %v; the late write was lost", data, err)
			}
			st, _ := lstat(e.path)
			if isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK; isLink != decrypt {
				t.Errorf("PATH is a symlink: %v, want %v (rolled back)", isLink, decrypt)
			}
			assertNoLeftovers(t, e)
		})
	}
}

func TestPendingJobBlocksNewJob(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	buildTree(t, e.path)
	orig := takeSnapshot(t, e.path)
	if err := ensureJournalDir(e.o.JournalDir); err != nil {
		t.Fatal(err)
	}
	j, err := newJob(opEncrypt, e.path, e.dst)
	if err != nil {
		t.Fatal(err)
	}
	j.State = stateCopying
	if err := writeJournal(e.o.JournalDir, j); err != nil {
		t.Fatal(err)
	}
	err = Encrypt(context.Background(), filepath.Join(e.path, "a"), e.dst+"/a", e.o)
	mustErrorIs(t, err, ErrRefused)
	if !strings.Contains(err.Error(), "pending") {
		t.Errorf("error %q does not say a job is pending", err)
	}
	lines, err := Recover(e.o)
	if err != nil || len(lines) != 1 || lines[0] != "rolled back encrypt of "+e.path+" (copy was incomplete)" {
		t.Fatalf("Recover = %q, %v", lines, err)
	}
	assertPlain(t, e, orig)
	if err := Encrypt(context.Background(), e.path, e.dst, e.o); err != nil {
		t.Fatal(err)
	}
	assertEncrypted(t, e, orig)
}

func TestRecoverBadJournal(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	if err := ensureJournalDir(e.o.JournalDir); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(e.o.JournalDir, "0123456789abcdef.json")
	writeFile(t, bad, []byte(`{"version":1,"id":"0123456789abcdef","op":"encrypt","state":"copying","path":"/","dst":"/x"}`), 0o600)
	tmp := filepath.Join(e.o.JournalDir, "fedcba9876543210.json.tmp")
	writeFile(t, tmp, []byte(`{"ver`), 0o600)
	lines, err := Recover(e.o)
	if err == nil || len(lines) != 0 {
		t.Fatalf("Recover = %q, %v; want an error", lines, err)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Errorf("unreadable journal was not kept: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp journal was not removed: %v", err)
	}
}

func TestRecoverNeedsTheMount(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	buildTree(t, e.path)
	if !crashAt(t, e, "encrypt", "encrypt:copied") {
		t.Fatal("the helper never reached encrypt:copied")
	}
	o := e.o
	o.MountDir = filepath.Join(e.base, "unmounted")
	mkdirAll(t, o.MountDir)
	lines, err := Recover(o)
	if err == nil || !strings.Contains(err.Error(), "is not mounted") || len(lines) != 0 {
		t.Fatalf("Recover without the mount = %q, %v", lines, err)
	}
	if ents, _ := os.ReadDir(e.o.JournalDir); len(ents) != 1 {
		t.Errorf("journal entries = %v, want the job kept", names(ents))
	}
	lines, err = Recover(e.o)
	if err != nil || len(lines) != 1 {
		t.Fatalf("Recover = %q, %v", lines, err)
	}
}

func TestJournalDirPermissions(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	mkdirAll(t, e.o.JournalDir)
	chmod(t, e.o.JournalDir, 0o777)
	if _, err := Recover(e.o); err == nil || !strings.Contains(err.Error(), "not writable by group or others") {
		t.Errorf("Recover with a world-writable journal dir = %v", err)
	}
	e.o.JournalDir = filepath.Join(e.base, "new", "journal")
	if _, err := Recover(e.o); err != nil {
		t.Fatal(err)
	}
	st, err := lstat(e.o.JournalDir)
	if err != nil || st.Mode&0o777 != 0o700 {
		t.Errorf("journal dir mode %04o, %v; want 0700", st.Mode&0o777, err)
	}
}

func FuzzParseJob(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"0123456789abcdef","op":"encrypt","state":"copied","path":"/var/lib/x","dst":"/m/c/var/lib/x","created_dirs":["/m/c/var","/m/c/var/lib"],"link_uid":0,"link_gid":0,"started":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := parseJob(data)
		if err != nil {
			return
		}
		for _, p := range append([]string{j.Path, j.Dst}, j.CreatedDirs...) {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
				t.Fatalf("accepted bad path %q", p)
			}
		}
		if within(j.Dst, j.Path) || within(j.Path, j.Dst) {
			t.Fatalf("accepted overlapping %q %q", j.Path, j.Dst)
		}
		for _, s := range []string{j.oldPath(), j.newPath(), j.linkPath()} {
			if filepath.Dir(s) != filepath.Dir(j.Path) {
				t.Fatalf("sibling %q is not next to %q", s, j.Path)
			}
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte("41 26 0:38 / /tmp/x rw,relatime - tmpfs tmpfs rw\n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mp := range mountPoints(procfs.ParseMountinfo(data)) {
			if !filepath.IsAbs(mp) || filepath.Clean(mp) != mp {
				t.Fatalf("bad mount point %q", mp)
			}
		}
	})
}

func TestParseMountinfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt/with\\040space rw - ext3 /dev/root rw\n41 26 0:38 / /tmp/x rw,relatime - tmpfs tmpfs rw\n"
	got := mountPoints(procfs.ParseMountinfo([]byte(in)))
	want := []string{"/mnt/with space", "/tmp/x"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("parseMountinfo = %q, want %q", got, want)
	}
}
