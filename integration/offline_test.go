// Package integration holds end-to-end tests of the real mysecure binary,
// built with `go build` exactly as users get it (no test hooks: real KDF
// flags, real signals, real filesystems).
package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
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

var binary string

func TestMain(m *testing.M) {
	if os.Getenv("MYSECURE_LOCK_PROBE") != "" {
		// A child of the POSIX lock test: no binary needed.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "mysecure-integration-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mysecure")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/mysecure").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	// The guard `harden mysqld` installs, found next to mysecure.
	out, err = exec.Command("go", "build", "-o", filepath.Join(dir, "mysqld-guard"), "../cmd/mysqld-guard").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	// Every mysecure a test starts gets a private rollback state dir
	// unless the test names one: a run that forgot would write
	// /var/lib/mysecure/state, and the test of the built-in default paths
	// refuses to run over an existing /var/lib/mysecure.
	os.Setenv("MYSECURE_STATE_DIR", filepath.Join(dir, "state"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type env struct {
	t     *testing.T
	dir   string
	store string
	state string // rollback state dir (MYSECURE_STATE_DIR), private to the test
	creds []string
}

// newEnv makes a volume with cheap but real KDF settings (flags, not hooks).
func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, store: filepath.Join(dir, "store"), state: filepath.Join(dir, "state")}
	os.WriteFile(filepath.Join(dir, "pass"), []byte("integration passphrase\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "salt"), []byte("integration salt\n"), 0o600)
	e.creds = []string{"--passphrase-file", filepath.Join(dir, "pass"), "--salt-file", filepath.Join(dir, "salt")}
	e.run(0, nil, nil, append([]string{"init", "--kdf-memory", "8", "--kdf-time", "1"}, e.creds...)...)
	return e
}

// run runs the binary with the store set and checks the exit code.
func (e *env) run(want int, stdin io.Reader, stdout io.Writer, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(binary, append([]string{"--store", e.store}, args...)...)
	cmd.Env = append(os.Environ(), "MYSECURE_STATE_DIR="+e.state)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &errb
	err := cmd.Run()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if got != want {
		e.t.Fatalf("mysecure %s: exit %d, want %d\n%s", strings.Join(args, " "), got, want, errb.String())
	}
	return errb.String()
}

func TestDefaultKDFVolume(t *testing.T) {
	// The production default (Argon2id 256 MiB, t=3) end to end, once.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p"), []byte("p"), 0o600)
	os.WriteFile(filepath.Join(dir, "s"), []byte("s"), 0o600)
	e := &env{t: t, dir: dir, store: filepath.Join(dir, "store"), state: filepath.Join(dir, "state"), creds: []string{"--passphrase-file", filepath.Join(dir, "p"), "--salt-file", filepath.Join(dir, "s")}}
	e.run(0, nil, nil, append([]string{"init"}, e.creds...)...)
	var out bytes.Buffer
	e.run(0, nil, &out, "key", "list", "--json")
	if !strings.Contains(out.String(), `"memory_kib": 262144`) || !strings.Contains(out.String(), `"time": 3`) {
		t.Fatalf("default KDF not used:\n%s", out.String())
	}
	e.run(0, nil, nil, append([]string{"key", "verify"}, e.creds...)...)
}

// TestLargeStream pushes 50 MiB through pipes both ways.
func TestLargeStream(t *testing.T) {
	e := newEnv(t)
	data := make([]byte, 50<<20)
	rand.Read(data)
	enc := filepath.Join(e.dir, "big.msec")
	e.run(0, bytes.NewReader(data), nil, append([]string{"file", "encrypt"}, append(e.creds, "-", enc)...)...)
	h := sha256.New()
	e.run(0, nil, h, append([]string{"file", "decrypt"}, append(e.creds, enc, "-")...)...)
	want := sha256.Sum256(data)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("50 MiB round trip differs")
	}
}

// TestInterrupt: SIGINT while encrypting from a quiet pipe leaves no
// output and no temp file, and exits 9.
func TestInterrupt(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out.msec")
	cmd := exec.Command(binary, append([]string{"--store", e.store, "file", "encrypt"}, append(e.creds, "-", out)...)...)
	stdin, _ := cmd.StdinPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(make([]byte, 3<<20))
	waitForTemp(t, e.dir)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 9 {
		t.Fatalf("interrupted encrypt: %v, want exit 9\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("stderr: %s", errb.String())
	}
	stdin.Close()
	assertNoOutput(t, e.dir, "out.msec")
}

// TestDiskFull: encrypting into a full filesystem fails cleanly, removes
// its partial output and leaves the input alone.
func TestDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	small := filepath.Join(e.dir, "small")
	os.Mkdir(small, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small).CombinedOutput(); err != nil {
		testenv.Missing(t, "tmpfs mount", string(out))
	}
	defer exec.Command("umount", small).Run()
	in := filepath.Join(e.dir, "in")
	data := make([]byte, 4<<20)
	rand.Read(data)
	os.WriteFile(in, data, 0o600)
	stderr := e.run(1, nil, nil, append([]string{"file", "encrypt"}, append(e.creds, in, filepath.Join(small, "out.msec"))...)...)
	if !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, "hint: the output's filesystem is full") {
		t.Fatalf("stderr: %s", stderr)
	}
	assertNoOutput(t, small, "out.msec")
	got, _ := os.ReadFile(in)
	if !bytes.Equal(got, data) {
		t.Fatal("input changed")
	}
}

func waitForTemp(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 250; i++ {
		m, _ := filepath.Glob(filepath.Join(dir, ".*mysecure-tmp-*"))
		if len(m) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no temp output appeared")
}

func assertNoOutput(t *testing.T, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a failed run", name)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*mysecure-tmp-*")); len(m) > 0 {
		t.Fatalf("temp files left: %v", m)
	}
}
