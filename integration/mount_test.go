package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// mountEnv is a volume mounted by the real daemon, with every path
// private to the test.
type mountEnv struct {
	*env
	mnt, socket, audit, log string
	vars                    []string
	// base replaces os.Environ() when set: the defaults tests drop every
	// MYSECURE_* setting (the TestMain's private state dir among them).
	base []string
	// noTTY runs commands in a new session: no terminal to prompt on,
	// as under systemd or cron.
	noTTY bool
}

// newMount mounts a fresh volume; extra are more MYSECURE_* settings.
func newMount(t *testing.T, extra ...string) *mountEnv {
	t.Helper()
	return newMountFiles(t, nil, extra...)
}

// newMountFiles is newMount with files the `mysecure mount` command
// inherits (files[i] becomes descriptor 3+i, as exec.Cmd.ExtraFiles), as a
// shell that leaves descriptors open would hand them over.
func newMountFiles(t *testing.T, files []*os.File, extra ...string) *mountEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	return mountVolume(t, newEnv(t), files, extra...)
}

// mountVolume mounts the volume of e (made by newEnv or newStressEnv).
func mountVolume(t *testing.T, e *env, files []*os.File, extra ...string) *mountEnv {
	t.Helper()
	// The mount must be reachable by other users (the --user test runs
	// as nobody): t.TempDir is 0700.
	os.Chmod(e.dir, 0o755)
	os.Chmod(filepath.Dir(e.dir), 0o755)
	m := &mountEnv{env: e, mnt: filepath.Join(e.dir, "mnt"), socket: filepath.Join(e.dir, "ctl.sock"),
		audit: filepath.Join(e.dir, "access.log"), log: filepath.Join(e.dir, "daemon.log")}
	m.vars = []string{"MYSECURE_STORE=" + e.store, "MYSECURE_MOUNT=" + m.mnt, "MYSECURE_SOCKET=" + m.socket,
		"MYSECURE_AUDIT_LOG=" + m.audit, "MYSECURE_LOG_FILE=" + m.log, "MYSECURE_STATE_DIR=" + e.state}
	m.vars = append(m.vars, extra...)
	if files == nil {
		m.ms(0, append([]string{"mount"}, m.creds()...)...)
	} else {
		c := m.cmd(append([]string{"mount"}, m.creds()...)...)
		c.ExtraFiles = files
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("mysecure mount: %v\n%s", err, out)
		}
	}
	t.Cleanup(m.unmount)
	return m
}

// unmount ends the test's mount (lazily if the daemon does not answer)
// and shows the daemon's log when the test failed.
func (m *mountEnv) unmount() {
	if err := m.cmd("umount").Run(); err != nil {
		exec.Command("umount", "-l", m.mnt).Run()
	}
	if m.t.Failed() {
		b, _ := os.ReadFile(m.log)
		m.t.Logf("daemon log:\n%s", b)
	}
}

func (m *mountEnv) creds() []string { return append([]string(nil), m.env.creds...) }

func (m *mountEnv) cmd(args ...string) *exec.Cmd {
	c := exec.Command(binary, args...)
	base := m.base
	if base == nil {
		base = os.Environ()
	}
	c.Env = append(append([]string(nil), base...), m.vars...)
	if m.noTTY {
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	return c
}

// ms runs mysecure and checks its exit code; it returns stdout+stderr.
func (m *mountEnv) ms(want int, args ...string) string {
	m.t.Helper()
	var out bytes.Buffer
	c := m.cmd(args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		m.t.Fatal(err)
	}
	if got != want {
		m.t.Fatalf("mysecure %s: exit %d, want %d\n%s", strings.Join(args, " "), got, want, out.String())
	}
	return out.String()
}

func (m *mountEnv) aclAdd(rule string) {
	m.ms(0, append([]string{"acl", "add", rule}, m.creds()...)...)
}

// read runs prog FILE (cat-like) and returns its output and error.
func read(prog string, args ...string) (string, error) {
	out, err := exec.Command(prog, args...).CombinedOutput()
	return string(out), err
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func TestMountRules(t *testing.T) {
	m := newMount(t)
	secret := filepath.Join(m.mnt, "mysqlbackup", "protected.cnf")
	// Before any rule, nobody reads or writes, root included.
	if err := os.WriteFile(secret, []byte("x"), 0o644); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("write with no rules: %v", err)
	}

	bin := filepath.Join(m.dir, "bin")
	os.Mkdir(bin, 0o755)
	reader := filepath.Join(bin, "reader")
	copyFile(t, "/usr/bin/cat", reader, 0o755)
	writer := filepath.Join(bin, "writer")
	copyFile(t, "/usr/bin/tee", writer, 0o755)
	m.aclAdd("ALLOW @mysqlbackup * " + reader)
	m.aclAdd("ALLOW @mysqlbackup *.cnf " + writer)

	// The allowed writer writes, the allowed reader reads.
	w := exec.Command(writer, secret)
	w.Stdin = strings.NewReader("[client]\npassword=MARKER-s3cr3t\n")
	if out, err := w.CombinedOutput(); err != nil {
		t.Fatalf("allowed writer: %v %s", err, out)
	}
	if out, err := read(reader, secret); err != nil || !strings.Contains(out, "MARKER-s3cr3t") {
		t.Fatalf("allowed reader: %q %v", out, err)
	}
	// Denied: root's cat, another binary, a copy at another path.
	if out, err := read("/usr/bin/cat", secret); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("root's cat: %q %v", out, err)
	}
	if _, err := read("/usr/bin/head", secret); err == nil {
		t.Fatal("head was allowed")
	}
	other := filepath.Join(bin, "copy-of-reader")
	copyFile(t, reader, other, 0o755)
	if _, err := read(other, secret); err == nil {
		t.Fatal("a copy of the allowed binary at another path was allowed")
	}
	// The writer's rule is for *.cnf only.
	w = exec.Command(writer, filepath.Join(m.mnt, "mysqlbackup", "dump.sql"))
	w.Stdin = strings.NewReader("x")
	if err := w.Run(); err == nil {
		t.Fatal("writer allowed outside its pattern")
	}

	// A byte-modified binary at the allowed path is denied; acl update
	// re-fingerprints it and shows old and new SHA-256.
	f, _ := os.OpenFile(reader, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0})
	f.Close()
	if _, err := read(reader, secret); err == nil {
		t.Fatal("a modified binary at the allowed path was allowed")
	}
	b, _ := os.ReadFile(m.audit)
	if !strings.Contains(string(b), "fingerprint") {
		t.Fatalf("audit log does not say why the modified binary was denied:\n%s", b)
	}
	out := m.ms(0, append([]string{"acl", "update"}, m.creds()...)...)
	if !strings.Contains(out, reader+" sha256 ") || !strings.Contains(out, " -> ") {
		t.Fatalf("acl update output: %s", out)
	}
	if out, err := read(reader, secret); err != nil || !strings.Contains(out, "MARKER") {
		t.Fatalf("after acl update: %q %v", out, err)
	}

	// DENY wins; changes apply without remount.
	m.aclAdd("DENY @* protected.cnf " + reader)
	if _, err := read(reader, secret); err == nil {
		t.Fatal("DENY rule did not win")
	}
	m.ms(0, append([]string{"acl", "del", "DENY @* protected.cnf " + reader}, m.creds()...)...)
	if _, err := read(reader, secret); err != nil {
		t.Fatalf("after deleting the DENY rule: %v", err)
	}

	// Permissive: logs and allows.
	m.ms(0, append([]string{"mode", "set", "permissive"}, m.creds()...)...)
	if _, err := read("/usr/bin/head", secret); err != nil {
		t.Fatalf("permissive mode denied: %v", err)
	}
	m.ms(0, "mode", "set", "enforcing")
	b, _ = os.ReadFile(m.audit)
	var sawWould bool
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit log line is not JSON: %q", line)
		}
		if rec["decision"] == "would-deny" && rec["exe"] == "/usr/bin/head" {
			sawWould = true
			for _, k := range []string{"time", "pid", "uid", "sha256", "file", "category", "reason"} {
				if _, ok := rec[k]; !ok {
					t.Fatalf("audit record lacks %q: %s", k, line)
				}
			}
		}
	}
	if !sawWould {
		t.Fatalf("permissive open not logged:\n%s", b)
	}

	// Renaming, linking and removing change what programs read: the
	// same rules as writing. Root's mv, ln, rm are denied.
	for _, c := range [][]string{
		{"mv", secret, secret + ".moved"},
		{"ln", secret, filepath.Join(m.mnt, "mysqlbackup", "alias.cnf")},
		{"ln", "-s", "/tmp/evil", filepath.Join(m.mnt, "mysqlbackup", "evil.cnf")},
		{"rm", "-f", secret},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("%v by a program no rule names: %q %v", c, out, err)
		}
	}
	if out, err := read(reader, secret); err != nil || !strings.Contains(out, "MARKER") {
		t.Fatalf("file changed by a denied mv/rm: %q %v", out, err)
	}

	// Status counts; the store holds no plaintext.
	var st map[string]any
	if err := json.Unmarshal([]byte(m.ms(0, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st["mounted"] != true || st["rules"].(float64) != 2 || st["denials"].(float64) < 4 || st["binaries_hashed"].(float64) < 1 {
		t.Fatalf("status: %v", st)
	}
	scanStore(t, m.store, "MARKER-s3cr3t", "protected.cnf")
}

// scanStore fails if any store file or name contains a marker.
func scanStore(t *testing.T, store string, markers ...string) {
	t.Helper()
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		for _, mk := range markers {
			if strings.Contains(p, mk) {
				t.Fatalf("plaintext name in the store: %s", p)
			}
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			for _, mk := range markers {
				if bytes.Contains(b, []byte(mk)) {
					t.Fatalf("plaintext %q in store file %s", mk, p)
				}
			}
		}
		return nil
	})
}

func TestMountShellChildrenUser(t *testing.T) {
	m := newMount(t)
	data := filepath.Join(m.mnt, "mysql", "report.txt")
	// Write it in admin mode (no rule needed), then go back to enforcing.
	m.ms(0, append([]string{"mode", "set", "admin"}, m.creds()...)...)
	if err := os.WriteFile(data, []byte("report MARKER\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.ms(0, "mode", "set", "enforcing")

	script := filepath.Join(m.dir, "report.sh")
	os.WriteFile(script, []byte("#!/bin/bash\nread -r line < \"$1\"\necho \"bash:$line\"\n/usr/bin/cat \"$1\"\n"), 0o755)
	// Without --shell, a script under bash is just bash: denied.
	m.aclAdd("ALLOW @mysql * /usr/bin/cat --user=65534")
	if out, _ := read("/bin/bash", script, data); strings.Contains(out, "bash:report") {
		t.Fatalf("script allowed without a --shell rule: %s", out)
	}
	m.aclAdd("ALLOW @mysql * " + script + " --shell=/bin/bash --children=/usr/bin/cat")
	out, err := read("/bin/bash", script, data)
	if err != nil || !strings.Contains(out, "bash:report MARKER") || strings.Count(out, "report MARKER") != 2 {
		t.Fatalf("--shell script and its --children cat: %q %v", out, err)
	}
	// Another script under the same bash is denied; head as a child too.
	other := filepath.Join(m.dir, "other.sh")
	os.WriteFile(other, []byte("#!/bin/bash\n/usr/bin/head -1 \"$1\"\n"), 0o755)
	if _, err := read("/bin/bash", other, data); err == nil {
		t.Fatal("another script was allowed")
	}
	os.WriteFile(script, []byte("#!/bin/bash\n/usr/bin/head -1 \"$1\"\n"), 0o755)
	if _, err := read("/bin/bash", script, data); err == nil {
		t.Fatal("a changed script (or an unlisted child) was allowed")
	}

	// --user: the cat rule is for uid 65534 only.
	if _, err := read("/usr/bin/cat", data); err == nil {
		t.Fatal("root allowed by a --user=65534 rule")
	}
	c := exec.Command("/usr/bin/cat", data)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := c.CombinedOutput(); err != nil || !strings.Contains(string(out), "MARKER") {
		t.Fatalf("cat as nobody: %q %v", out, err)
	}
}

func TestMountErrors(t *testing.T) {
	m := newMount(t)
	bad := append([]string{"acl", "add", "ALLOW mysql * /usr/bin/cat"}, m.creds()...)
	if out := m.ms(2, bad...); !strings.Contains(out, "error:") {
		t.Fatalf("bad rule: %s", out)
	}
	m.ms(2, append([]string{"acl", "add", "ALLOW @nosuch * /usr/bin/cat"}, m.creds()...)...)
	wrong := []string{"acl", "add", "ALLOW @mysql * /usr/bin/cat", "--passphrase-file", filepath.Join(m.dir, "salt"), "--salt-file", filepath.Join(m.dir, "pass")}
	if out := m.ms(3, wrong...); !strings.Contains(out, "incorrect credentials") {
		t.Fatalf("wrong credential: %s", out)
	}
	m.ms(2, append([]string{"encrypt", "@nosuch", m.dir}, m.creds()...)...)
	// Mounting again: the detached mount says it is done already and
	// exits 0 without asking for a credential; another mount point on the
	// same socket is a conflict; the daemon itself (--foreground) refuses.
	m.ms(0, "status")
	if out := m.ms(0, "mount"); !strings.Contains(out, "already mounted: "+m.store+" on "+m.mnt) {
		t.Fatalf("mount of a mounted volume: %s", out)
	}
	if out := m.ms(6, "mount", "--mount", filepath.Join(m.dir, "other")); !strings.Contains(out, "already mounted") {
		t.Fatalf("mount on another mount point: %s", out)
	}
	if out := m.ms(6, append([]string{"mount", "--foreground"}, m.creds()...)...); !strings.Contains(out, "already") {
		t.Fatalf("second mount: %s", out)
	}
	m.ms(0, "umount")
	if out := m.ms(8, "status"); !strings.Contains(out, "not running") {
		t.Fatalf("status when unmounted: %s", out)
	}
	m.ms(8, "acl", "list")
	m.ms(8, "encrypt", "@mysql", m.dir)
}

func TestEncryptInPlace(t *testing.T) {
	m := newMount(t)
	// A directory tree the way a DBA has it.
	src := filepath.Join(m.dir, "var", "lib", "mysqlbackup")
	os.MkdirAll(filepath.Join(src, "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "backup.sql"), []byte("INSERT MARKER-inplace\n"), 0o640)
	os.WriteFile(filepath.Join(src, "sub", "big.bin"), bytes.Repeat([]byte("z"), 300000), 0o600)
	os.Link(filepath.Join(src, "backup.sql"), filepath.Join(src, "sub", "hardlink.sql"))
	os.Chown(filepath.Join(src, "backup.sql"), 999, 999)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "backup.sql"), old, old)
	before := snapshot(t, src)

	// A move session lets this process read plaintext: it needs the
	// master credential like a rule change.
	if out := m.ms(2, "encrypt", "@mysqlbackup", src); !strings.Contains(out, "no credential given") {
		t.Fatalf("encrypt without a credential: %s", out)
	}
	out := m.ms(0, append([]string{"encrypt", "@mysqlbackup", src}, m.creds()...)...)
	if !strings.Contains(out, "encrypted "+src+" -> "+filepath.Join(m.mnt, "mysqlbackup", src)) {
		t.Fatalf("encrypt output: %s", out)
	}
	fi, err := os.Lstat(src)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is not a symlink after encrypt", src)
	}
	lsOut, _ := exec.Command("ls", "-l", filepath.Dir(src)).CombinedOutput()
	if !strings.Contains(string(lsOut), "mysqlbackup -> "+filepath.Join(m.mnt, "mysqlbackup")) {
		t.Fatalf("ls -l does not show the link:\n%s", lsOut)
	}
	// Root's cat through the symlink: denied; an allowed program: reads.
	if _, err := read("/usr/bin/cat", filepath.Join(src, "backup.sql")); err == nil {
		t.Fatal("root's cat read through the symlink")
	}
	m.aclAdd("ALLOW @mysqlbackup * /usr/bin/sha256sum")
	if out, err := read("/usr/bin/sha256sum", filepath.Join(src, "sub", "big.bin")); err != nil || !strings.Contains(out, before["sub/big.bin"].sum) {
		t.Fatalf("allowed program through the symlink: %q %v", out, err)
	}
	scanStore(t, m.store, "MARKER-inplace", "backup.sql")
	// Already encrypted: refused with its own exit code.
	if out := m.ms(6, append([]string{"encrypt", "@mysqlbackup", src}, m.creds()...)...); !strings.Contains(out, "already encrypted") {
		t.Fatalf("second encrypt: %s", out)
	}
	// Inside the mount or store: refused.
	m.ms(2, append([]string{"encrypt", "@mysqlbackup", m.store}, m.creds()...)...)

	m.ms(0, append([]string{"decrypt", "@mysqlbackup", src}, m.creds()...)...)
	after := snapshot(t, src)
	compareSnapshots(t, before, after)
}

// TestEncryptKilled kills, with SIGKILL, first the `mysecure encrypt`
// doing a big move, then the daemon under another one. The next command
// (or the next mount) completes or rolls back the move; nothing is lost.
func TestEncryptKilled(t *testing.T) {
	for _, victim := range []string{"cli", "daemon"} {
		t.Run(victim, func(t *testing.T) {
			m := newMount(t)
			src := filepath.Join(m.dir, "data")
			os.MkdirAll(src, 0o755)
			for i := 0; i < 40; i++ {
				os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 4<<20), 0o644)
			}
			before := snapshot(t, src)
			var s struct{ Pid int }
			json.Unmarshal([]byte(m.ms(0, "status", "--json")), &s)

			enc := m.cmd(append([]string{"encrypt", "@mysql", src}, m.creds()...)...)
			enc.Stdout, enc.Stderr = io.Discard, io.Discard
			if err := enc.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill once the copy is under way (a journal entry exists
			// and some data reached the mount).
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				ents, _ := os.ReadDir(filepath.Join(m.store, "ms.journal"))
				if len(ents) > 0 {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(150 * time.Millisecond)
			if victim == "cli" {
				enc.Process.Kill()
			} else {
				syscall.Kill(s.Pid, syscall.SIGKILL)
			}
			enc.Wait()
			if victim == "daemon" {
				// The next mount clears the dead one and recovers.
				m.ms(0, append([]string{"mount"}, m.creds()...)...)
				waitEmpty(t, filepath.Join(m.store, "ms.journal"))
			} else {
				// The next move command recovers first.
				out := m.cmd(append([]string{"encrypt", "@mysql", src}, m.creds()...)...)
				b, _ := out.CombinedOutput()
				if !strings.Contains(string(b), "recovered an interrupted move") {
					t.Fatalf("next command did not recover: %s", b)
				}
			}
			fi, err := os.Lstat(src)
			if err != nil {
				t.Fatalf("after recovery %s is gone: %v", src, err)
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				m.ms(0, append([]string{"decrypt", "@mysql", src}, m.creds()...)...)
			}
			compareSnapshots(t, before, snapshot(t, src))
			if ents, _ := os.ReadDir(filepath.Join(m.store, "ms.journal")); len(ents) != 0 {
				t.Fatalf("journal not empty after recovery: %v", ents)
			}
			if left, _ := filepath.Glob(src + ".mysecure-*"); len(left) != 0 {
				t.Fatalf("leftovers: %v", left)
			}
		})
	}
}

func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if ents, _ := os.ReadDir(dir); len(ents) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never emptied", dir)
}

// TestRulesTampered: a rule file changed outside mysecure makes the
// daemon deny everything, say why in status and in its log; adding rules
// again with the master credential restores service.
func TestRulesTampered(t *testing.T) {
	m := newMount(t)
	f := filepath.Join(m.mnt, "mysqlbackup", "x.cnf")
	m.aclAdd("ALLOW @mysqlbackup * /usr/bin/tee")
	m.aclAdd("ALLOW @mysqlbackup * /usr/bin/cat")
	w := exec.Command("/usr/bin/tee", f)
	w.Stdin = strings.NewReader("secret\n")
	if err := w.Run(); err != nil {
		t.Fatal(err)
	}
	m.ms(0, "umount")

	// Allow /usr/bin/head too, by editing the file: the MAC no longer fits.
	rulesPath := filepath.Join(m.store, "rules.json")
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rulesPath, bytes.Replace(b, []byte("/usr/bin/cat"), []byte("/usr/bin/hed"), 1), 0o600)

	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	for _, prog := range []string{"/usr/bin/cat", "/usr/bin/tee", "/usr/bin/head"} {
		if _, err := read(prog, f); err == nil {
			t.Fatalf("%s allowed with a tampered rule file", prog)
		}
	}
	st := m.ms(0, "status")
	if !strings.Contains(st, "DENY ALL:") || !strings.Contains(st, "MAC mismatch") {
		t.Fatalf("status does not say why everything is denied:\n%s", st)
	}
	log, _ := os.ReadFile(m.log)
	if !strings.Contains(string(log), "rules tampered: deny all") {
		t.Fatalf("daemon log does not say it:\n%s", log)
	}
	// Re-adding a rule (with the credential) starts a fresh, valid file.
	m.aclAdd("ALLOW @mysqlbackup * /usr/bin/cat")
	if out, err := read("/usr/bin/cat", f); err != nil || out != "secret\n" {
		t.Fatalf("after re-adding the rule: %q %v", out, err)
	}
	if st := m.ms(0, "status"); strings.Contains(st, "DENY ALL") {
		t.Fatalf("still deny-all after the rules were saved again:\n%s", st)
	}
}

// TestInMountProgramNotSpoofable: a rule may name a program that lives on
// the mount (a hardened mysqld). Another mount namespace can put any file
// at that path; the daemon must hash the file actually executing, not
// whatever the store has under that name.
func TestInMountProgramNotSpoofable(t *testing.T) {
	testenv.RequireCommands(t, "unshare")
	m := newMount(t)
	self, _ := os.Executable()
	m.ms(0, append([]string{"mode", "set", "admin"}, m.creds()...)...)
	prog := filepath.Join(m.mnt, "protected", "mycat")
	copyFile(t, "/usr/bin/cat", prog, 0o755)
	secret := filepath.Join(m.mnt, "mysqlbackup", "f")
	os.WriteFile(secret, []byte("in-mount program MARKER\n"), 0o644)
	m.ms(0, "mode", "set", "enforcing")
	m.aclAdd("ALLOW @protected * " + self)
	m.aclAdd("ALLOW @protected * /usr/bin/unshare")
	m.aclAdd("ALLOW @mysqlbackup * " + prog)

	// The real program on the mount reads.
	if out, err := read(prog, secret); err != nil || !strings.Contains(out, "MARKER") {
		t.Fatalf("program on the mount: %q %v", out, err)
	}
	// In a private mount namespace, another binary at the same path: denied.
	script := fmt.Sprintf("mount -t tmpfs none %s && cp /usr/bin/head %s && %s %s", filepath.Dir(prog), prog, prog, secret)
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput()
	if err == nil || strings.Contains(string(out), "MARKER") {
		t.Fatalf("a spoofed program at the rule's path read plaintext: %q %v", out, err)
	}
	b, _ := os.ReadFile(m.audit)
	if !strings.Contains(string(b), "not the file on the mysecure mount") {
		t.Fatalf("audit log does not say why:\n%s", b)
	}
}
