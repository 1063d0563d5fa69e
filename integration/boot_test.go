package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

const fuseSuperMagic = 0x65735546

// TestMountNotifiesSystemd: `mount --foreground` under a Type=notify
// service sends READY=1 to $NOTIFY_SOCKET (here an abstract socket, as
// systemd uses) only once the mount serves and the control socket
// answers, and STOPPING=1 when it unmounts on SIGTERM (issue 15 item 6).
func TestMountNotifiesSystemd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	e := newEnv(t)
	mnt, sock := filepath.Join(e.dir, "mnt"), filepath.Join(e.dir, "ctl.sock")
	vars := []string{"MYSECURE_STORE=" + e.store, "MYSECURE_MOUNT=" + mnt, "MYSECURE_SOCKET=" + sock,
		"MYSECURE_AUDIT_LOG=" + filepath.Join(e.dir, "access.log"), "MYSECURE_STATE_DIR=" + e.state}

	name := fmt.Sprintf("@mysecure-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	cmd := exec.Command(binary, append([]string{"mount", "--foreground"}, e.creds...)...)
	cmd.Env = append(os.Environ(), append(vars, "NOTIFY_SOCKET="+name)...)
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			exec.Command("umount", "-l", mnt).Run()
		}
	})

	type msg struct {
		s   string
		err error
	}
	recv := func() (string, error) {
		got := make(chan msg, 1)
		go func() {
			l.SetReadDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 4096)
			n, err := l.Read(buf)
			got <- msg{string(buf[:n]), err}
		}()
		select {
		case m := <-got:
			return m.s, m.err
		case <-exited:
			// A datagram sent just before the exit is still queued.
			if m := <-got; m.err == nil {
				return m.s, nil
			}
			return "", fmt.Errorf("mount --foreground exited (%v) before notifying:\n%s", exitErr, logb.String())
		}
	}

	state, err := recv()
	if err != nil {
		t.Fatalf("no readiness notification: %v\n%s", err, logb.String())
	}
	if state != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", state)
	}
	// At the moment READY=1 arrives, the mount serves and status answers.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil || st.Type != fuseSuperMagic {
		t.Fatalf("READY=1 before the mount serves: statfs %s: type %#x, %v", mnt, st.Type, err)
	}
	status := exec.Command(binary, "status")
	status.Env = append(os.Environ(), vars...)
	if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), "mounted") {
		t.Fatalf("READY=1 before the control socket answers: %v\n%s", err, out)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if state, err := recv(); err != nil || state != "STOPPING=1" {
		t.Fatalf("after SIGTERM: %q, %v, want STOPPING=1", state, err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("mount --foreground after SIGTERM: %v\n%s", exitErr, logb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mount --foreground did not exit after SIGTERM")
	}
}

// TestBootUnitsVerify runs the real systemd-analyze verify over
// examples/mysecure.service and examples/mariadb-after-mysecure.conf as a
// drop-in of the host's mariadb.service (issue 15 item 6).
func TestBootUnitsVerify(t *testing.T) {
	testenv.RequireCommands(t, "systemd-analyze")
	dir := t.TempDir()
	unit, err := os.ReadFile("../examples/mysecure.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nType=notify\n", "ExecStart=/usr/local/bin/mysecure mount --foreground "} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Fatalf("examples/mysecure.service lacks %q", want)
		}
	}
	// verify checks that ExecStart= is executable: name the test binary
	// where `make install` puts it.
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/mysecure"), []byte(binaryPath(t)))
	if err := os.WriteFile(filepath.Join(dir, "mysecure.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	// A mariadb.service to hang the drop-in on: the host's when installed.
	mariadb := []byte("[Unit]\nDescription=MariaDB stand-in\n[Service]\nExecStart=/bin/sleep infinity\n")
	if b, err := os.ReadFile("/lib/systemd/system/mariadb.service"); err == nil {
		mariadb = b
	}
	if err := os.WriteFile(filepath.Join(dir, "mariadb.service"), mariadb, 0o644); err != nil {
		t.Fatal(err)
	}
	dropin, err := os.ReadFile("../examples/mariadb-after-mysecure.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nAfter=mysecure.service\n", "\nBindsTo=mysecure.service\n"} {
		if !bytes.Contains(dropin, []byte(want)) {
			t.Fatalf("examples/mariadb-after-mysecure.conf lacks %q", want)
		}
	}
	os.Mkdir(filepath.Join(dir, "mariadb.service.d"), 0o755)
	verify := func(dropin []byte) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "mariadb.service.d", "mysecure.conf"), dropin, 0o644); err != nil {
			t.Fatal(err)
		}
		c := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "mysecure.service"), filepath.Join(dir, "mariadb.service"))
		// The drop-in is found next to the unit: the directory leads the
		// unit search path (a trailing ':' keeps the defaults).
		c.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
		return string(out)
	}
	// The drop-in is read: a bad key in it is reported.
	if out := verify(append(append([]byte(nil), dropin...), "NoSuchKey=1\n"...)); !strings.Contains(out, "NoSuchKey") {
		t.Fatalf("systemd-analyze did not read the drop-in:\n%s", out)
	}
	// Warnings about the host's own mariadb.service are not ours.
	for _, line := range strings.Split(strings.TrimSpace(verify(dropin)), "\n") {
		if strings.Contains(line, "mysecure") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// TestMakeInstall: `make install DESTDIR=...` lays out both binaries
// where the cron lines and the unit expect them, the unit, completion and
// docs; the installed binary answers --version as version (issue 15 item 7).
func TestMakeInstall(t *testing.T) {
	testenv.RequireCommands(t, "make", "go")
	dest := t.TempDir()
	out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest).CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/mysecure":                                            0o755,
		"usr/local/bin/mysqld-guard":                                        0o755,
		"etc/systemd/system/mysecure.service":                               0o644,
		"usr/local/share/bash-completion/completions/mysecure":              0o644,
		"usr/local/share/zsh/site-functions/_mysecure":                      0o644,
		"usr/local/share/doc/mysecure/boot.md":                              0o644,
		"usr/local/share/doc/mysecure/examples/mariadb-after-mysecure.conf": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("make install: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode || fi.Size() == 0 {
			t.Errorf("%s: mode %v size %d, want %v and not empty", path, fi.Mode().Perm(), fi.Size(), mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/mysecure.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/mysecure mount --foreground") {
		t.Errorf("installed unit:\n%s", unit)
	}
	comp, _ := os.ReadFile(filepath.Join(dest, "usr/local/share/bash-completion/completions/mysecure"))
	if !strings.Contains(string(comp), "__start_mysecure") {
		t.Errorf("bash completion file does not complete mysecure:\n%.300s", comp)
	}
	bin := filepath.Join(dest, "usr/local/bin/mysecure")
	v1, err1 := exec.Command(bin, "version").Output()
	v2, err2 := exec.Command(bin, "--version").Output()
	if err1 != nil || err2 != nil || string(v1) != string(v2) || !strings.HasPrefix(string(v1), "mysecure ") {
		t.Fatalf("version %q (%v) and --version %q (%v) differ", v1, err1, v2, err2)
	}

	// PREFIX moves the binaries, and the unit follows them.
	dest2 := t.TempDir()
	if out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest2, "PREFIX=/usr").CombinedOutput(); err != nil {
		t.Fatalf("make install PREFIX=/usr: %v\n%s", err, out)
	}
	unit, _ = os.ReadFile(filepath.Join(dest2, "etc/systemd/system/mysecure.service"))
	if _, err := os.Stat(filepath.Join(dest2, "usr/bin/mysecure")); err != nil || !strings.Contains(string(unit), "ExecStart=/usr/bin/mysecure mount") {
		t.Fatalf("PREFIX=/usr: %v\n%s", err, unit)
	}
}

// TestUmountNamesItsMount: `umount --socket` prints the mount that daemon
// served, not the configured default, and refuses a --mount that daemon
// does not serve (issue 15 item 9).
func TestUmountNamesItsMount(t *testing.T) {
	m := newMount(t)
	run := func(want int, args ...string) string {
		t.Helper()
		c := exec.Command(binary, args...)
		// Only the socket: the mount point is the daemon's to say.
		c.Env = append(os.Environ(), "MYSECURE_STATE_DIR="+m.state)
		out, err := c.CombinedOutput()
		got := 0
		if ee, ok := err.(*exec.ExitError); ok {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("mysecure %s: exit %d, want %d\n%s", strings.Join(args, " "), got, want, out)
		}
		return string(out)
	}
	other := filepath.Join(m.dir, "elsewhere")
	out := run(2, "umount", "--socket", m.socket, "--mount", other)
	if !strings.Contains(out, "the daemon on "+m.socket+" serves "+m.mnt+", not "+other) {
		t.Fatalf("umount with another --mount:\n%s", out)
	}
	out = run(0, "umount", "--socket", m.socket)
	if strings.TrimSpace(out) != "unmounted "+m.mnt {
		t.Fatalf("umount --socket printed %q, want %q", out, "unmounted "+m.mnt)
	}
}

// TestDecryptKeyFileSaysWhy: `decrypt` (and `encrypt`) with a key file
// names the credential it needs and why (issue 15 item 9).
func TestDecryptKeyFileSaysWhy(t *testing.T) {
	m := newMount(t)
	kf := m.addKeyFile()
	src := filepath.Join(m.dir, "data")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.ms(0, append([]string{"encrypt", "@mysql", src}, m.creds()...)...)
	out := m.ms(2, "decrypt", "@mysql", src, "--keyfile", kf)
	for _, want := range []string{
		"error: a key file is not a master credential: 'decrypt' moves files out of the mount into plaintext on disk",
		"it needs the master credential: the passphrase and salt, or the RSA private key",
		"hint: give --passphrase-file and --salt-file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("decrypt --keyfile lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Lstat(src); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("decrypt with a key file touched %s: %v %v", src, fi, err)
	}
}
