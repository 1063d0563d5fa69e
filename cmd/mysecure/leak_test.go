package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The secrets and the plaintext marker the leak tests look for.
const (
	leakPass   = "leak-test-passphrase-4f2a"
	leakSalt   = "leak-test-salt-9c1e"
	leakMarker = "PLAINTEXT-MARKER-77d3"
)

var coreLimitZero = regexp.MustCompile(`Max core file size +0 +0 `)

// procSnapshot is what anyone inspecting a running mysecure can see.
type procSnapshot struct {
	cmdline, environ, limits string
	fds                      []string
}

func snapshot(t *testing.T, pid int) procSnapshot {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read %s/%s: %v", dir, name, err)
		}
		return string(b)
	}
	s := procSnapshot{cmdline: read("cmdline"), environ: read("environ"), limits: read("limits")}
	ents, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, "fd", e.Name())); err == nil {
			s.fds = append(s.fds, target)
		}
	}
	return s
}

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, secret := range []string{leakPass, leakSalt, leakMarker} {
		if strings.Contains(text, secret) {
			t.Fatalf("%s contains the secret %q", where, secret)
		}
	}
}

// waitFor polls the process's open files until one contains substr.
func waitFor(t *testing.T, pid int, substr string) {
	t.Helper()
	for i := 0; i < 250; i++ {
		for _, fd := range snapshot(t, pid).fds {
			if strings.Contains(fd, substr) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d never opened a file matching %q", pid, substr)
}

// TestNoSecretsInProcess runs the real CLI with secrets fed through pipes
// and inspects /proc while it waits for them: argv, environment, open
// files, core limit; then checks its output and the disk.
func TestNoSecretsInProcess(t *testing.T) {
	work := t.TempDir()
	store := filepath.Join(work, "store")

	// 1. init reading both secrets from /dev/fd/3 and /dev/fd/4.
	pr, pw, _ := os.Pipe()
	sr, sw, _ := os.Pipe()
	var out, errb bytes.Buffer
	cmd := exec.Command("mysecure", "init", "--store", store, "--passphrase-file", "/dev/fd/3", "--salt-file", "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{pr, sr}
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	sr.Close()
	// The process disables core dumps first thing; wait for that.
	var s procSnapshot
	for i := 0; ; i++ {
		s = snapshot(t, cmd.Process.Pid)
		if coreLimitZero.MatchString(s.limits) {
			break
		}
		if i == 250 {
			t.Fatalf("core dumps never disabled:\n%s", s.limits)
		}
		time.Sleep(20 * time.Millisecond)
	}
	assertNoSecret(t, "argv", s.cmdline)
	assertNoSecret(t, "environment", s.environ)
	io.WriteString(pw, leakPass+"\n")
	pw.Close()
	io.WriteString(sw, leakSalt+"\n")
	sw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("init: %v\n%s", err, errb.String())
	}
	assertNoSecret(t, "init stdout", out.String())
	assertNoSecret(t, "init stderr", errb.String())

	// Secret files for the next commands, as an admin would keep them.
	passFile := filepath.Join(work, "pass")
	saltFile := filepath.Join(work, "salt")
	os.WriteFile(passFile, []byte(leakPass), 0o600)
	os.WriteFile(saltFile, []byte(leakSalt), 0o600)

	// 2. file encrypt from a pipe: while it runs, nothing on disk holds
	// plaintext and the process shows no secret.
	enc := filepath.Join(work, "out.enc")
	cmd = exec.Command("mysecure", "file", "encrypt", "--store", store, "--passphrase-file", passFile, "--salt-file", saltFile, "-", enc)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte(leakMarker+"\n"), 200000) // ~4 MiB
	if _, err := in.Write(chunk); err != nil {
		t.Fatal(err)
	}
	// Wait until it writes its (temporary) output: mid-stream.
	waitFor(t, cmd.Process.Pid, ".out.enc.mysecure-tmp-")
	s = snapshot(t, cmd.Process.Pid)
	assertNoSecret(t, "argv", s.cmdline)
	assertNoSecret(t, "environment", s.environ)
	checked := 0
	for _, fd := range s.fds {
		if strings.HasPrefix(fd, "/") && !strings.HasPrefix(fd, "/dev/") {
			checked++
			if b, err := os.ReadFile(fd); err == nil {
				assertNoSecret(t, "open file "+fd, string(b))
			}
		}
	}
	if checked == 0 {
		t.Fatal("no open file was inspected")
	}
	scanTree(t, work, passFile, saltFile)
	in.Write(chunk)
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, errb.String())
	}
	assertNoSecret(t, "encrypt stdout", out.String())
	assertNoSecret(t, "encrypt stderr", errb.String())
	scanTree(t, work, passFile, saltFile)

	// 3. A failing decrypt (wrong salt) prints no secret either.
	os.WriteFile(saltFile+"2", []byte(leakSalt+"x"), 0o600)
	cmd = exec.Command("mysecure", "--debug", "file", "decrypt", "--store", store, "--passphrase-file", passFile, "--salt-file", saltFile+"2", enc, filepath.Join(work, "never"))
	b, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("decrypt with a wrong salt succeeded")
	}
	assertNoSecret(t, "failed decrypt output", string(b))
}

// scanTree fails if any file under dir, except the allowed secret files,
// contains a secret or the plaintext marker.
func scanTree(t *testing.T, dir string, allowed ...string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		for _, a := range allowed {
			if p == a {
				return nil
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		assertNoSecret(t, "file "+p, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
