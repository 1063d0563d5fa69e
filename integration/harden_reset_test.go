package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// safeServer is a hardened server run the way Debian's init scripts do:
// mysqld_safe as root, the server as mysql through the guard, an error log.
type safeServer struct {
	t                     *testing.T
	sock, pidFile, errLog string
	port                  int
}

func (h *hardenEnv) startSafe(t *testing.T) *safeServer {
	t.Helper()
	srvDir := filepath.Join(h.dir, "srv")
	os.MkdirAll(srvDir, 0o755)
	exec.Command("chown", "mysql", srvDir).Run()
	top := filepath.Join(h.dir, "safe.cnf")
	// The guard's option file, as Debian's my.cnf includes conf.d, once
	// harden has written it.
	var inc []byte
	if g := filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d", "99-mysecure-guard.cnf"); fileExists(g) {
		inc = []byte("!include " + g + "\n")
	}
	os.WriteFile(top, inc, 0o644)
	s := &safeServer{t: t, sock: filepath.Join(srvDir, "safe.sock"), pidFile: filepath.Join(srvDir, "safe.pid"),
		errLog: filepath.Join(srvDir, "safe.err"), port: 34000 + os.Getpid()%1000}
	cmd := exec.Command("mysqld_safe", "--defaults-file="+top, "--ledir="+filepath.Dir(h.bin), "--datadir="+h.datadir,
		"--socket="+s.sock, "--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1", "--pid-file="+s.pidFile,
		"--log-error="+s.errLog, "--user=mysql", "--innodb-buffer-pool-size=64M", "--tmpdir="+filepath.Join(srvDir, "tmp"))
	out, _ := os.Create(filepath.Join(h.dir, "safe.out"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() {
		// mysqld_safe ends after a clean shutdown (whichever mysqld_safe
		// runs it by then).
		pid := s.pid()
		exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").Run()
		for i := 0; i < 300 && pid != 0 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	waitFor(t, "mysqld_safe to start the server", 90*time.Second, func() bool { return s.pid() != 0 && sockUp(s.sock) })
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func sockUp(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (s *safeServer) client() *sandbox.Server { return &sandbox.Server{Socket: s.sock, Port: s.port} }

// pid is the running server's pid (0 when none).
func (s *safeServer) pid() int {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// parentIsSafe reports whether the server runs under mysqld_safe.
func (s *safeServer) parentIsSafe() (bool, string) {
	pid := s.pid()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, err.Error()
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	cmdline, _ := os.ReadFile("/proc/" + f[1] + "/cmdline")
	c := strings.ReplaceAll(string(cmdline), "\x00", " ")
	return strings.Contains(c, "mysqld_safe"), c
}

// TestHardenResetUnderMysqldSafe: issue 15 item 1 on a host-like layout.
// The control socket is in a 0700 directory of root's (as /run/mysecure),
// the server runs under mysqld_safe as mysql with an error log. The reset
// works, the server comes back under mysqld_safe with its error log; a
// reset that fails after the stop starts it again as before and says so;
// an init directory the server cannot enter is refused before the stop.
func TestHardenResetUnderMysqldSafe(t *testing.T) {
	testenv.RequireCommands(t, "mysqld_safe", "mariadb-admin")
	run := filepath.Join(t.TempDir(), "run") // 0700, root's: like /run/mysecure
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	h := newHardenEnv(t, "MYSECURE_SOCKET="+filepath.Join(run, "control.sock"))
	h.socket = filepath.Join(run, "control.sock")
	h.harden(0)
	s := h.startSafe(t)
	if ok, c := s.parentIsSafe(); !ok {
		t.Fatalf("the server's parent is not mysqld_safe: %s", c)
	}
	pw := filepath.Join(h.dir, "newpw")
	os.WriteFile(pw, []byte(`Saf3'Pw\`), 0o600)
	reset := func(want int, user string, extra ...string) string {
		return h.ms(want, append(append([]string{"harden", "reset-root-password", "--user", user, "--password-file", pw, "--state", h.state}, extra...), h.creds()...)...)
	}

	// An init directory the server cannot enter: refused, server untouched.
	if fi, err := os.Stat(run); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the socket directory is not 0700: %v %v", fi.Mode(), err)
	}
	pid := s.pid()
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		t.Logf("server status: %s", regexp.MustCompile(`(?m)^[UG]id:.*$`).FindAllString(string(st), -1))
	}
	if out := reset(7, "app@127.0.0.1", "--init-dir", run); !strings.Contains(out, "cannot enter") {
		t.Fatalf("reset with a 0700 init dir: %s", out)
	}
	if s.pid() != pid {
		t.Fatal("the refused reset touched the server")
	}

	// The reset on the defaults (the init FIFO under /run).
	logBefore, _ := os.ReadFile(s.errLog)
	out := reset(0, "app@127.0.0.1")
	if !strings.Contains(out, "password of app@127.0.0.1 set") || !strings.Contains(out, "server started again (mysqld_safe") {
		t.Fatalf("reset: %s", out)
	}
	if s.pid() == 0 || s.pid() == pid {
		t.Fatalf("no new server after the reset (pid %d, was %d)", s.pid(), pid)
	}
	if ok, c := s.parentIsSafe(); !ok {
		t.Fatalf("after the reset the server's parent is not mysqld_safe: %s", c)
	}
	if err := login(s.client(), "app", `Saf3'Pw\`); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if err := login(s.client(), "intruder", ""); err == nil {
		t.Fatal("the restarted server lets anyone in")
	}
	logAfter, _ := os.ReadFile(s.errLog)
	if len(logAfter) <= len(logBefore) || strings.Count(string(logAfter[len(logBefore):]), "ready for connections") < 2 {
		t.Fatalf("the restarted server does not write its error log:\n%s", logAfter[len(logBefore):])
	}
	if strings.Contains(string(logAfter), `Saf3'Pw`) {
		t.Fatal("the password is in the error log")
	}
	if ents, _ := filepath.Glob("/run/mysecure-reset-*"); len(ents) != 0 {
		t.Fatalf("init directories left: %v", ents)
	}

	// A failure after the stop (SET PASSWORD for an account that does not
	// exist): the server is started again as before, and the command says
	// so with a non-zero exit.
	pid = s.pid()
	out = reset(1, "nosuch@127.0.0.1")
	if !strings.Contains(out, "SET PASSWORD failed") || !strings.Contains(out, "the server was started again as before") {
		t.Fatalf("failed reset: %s", out)
	}
	if s.pid() == 0 || s.pid() == pid {
		t.Fatalf("the server was not started again (pid %d, was %d)", s.pid(), pid)
	}
	if ok, c := s.parentIsSafe(); !ok {
		t.Fatalf("after the failed reset the server's parent is not mysqld_safe: %s", c)
	}
	if err := login(s.client(), "app", `Saf3'Pw\`); err != nil {
		t.Fatalf("after the failed reset: %v", err)
	}
	if rules := h.ms(0, "acl", "list"); strings.Contains(rules, binary) {
		t.Fatalf("the temporary rule was left:\n%s", rules)
	}
}
