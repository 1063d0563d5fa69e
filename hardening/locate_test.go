package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/hint"
)

func TestParseAccount(t *testing.T) {
	for _, tc := range []struct {
		in, account, host string
		ok                bool
	}{
		{"root@localhost", "root", "localhost", true},
		{"app", "app", "localhost", true},
		{"app@", "app", "localhost", true},
		{"app@10.0.0.%", "app", "10.0.0.%", true},
		{"@localhost", "", "localhost", false},
		{"", "", "localhost", false},
	} {
		a, h, ok := ParseAccount(tc.in)
		if a != tc.account || h != tc.host || ok != tc.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", tc.in, a, h, ok, tc.account, tc.host, tc.ok)
		}
	}
}

func TestResolveBackupTool(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.Abs(sh)
	for _, tc := range []struct {
		want, configured, got string
	}{
		{"none", "sh", ""},
		{"off", "", ""},
		{"", "sh", ""},
		{"auto", "sh", sh},             // the configured physical tool
		{"YES", "sh", sh},              // any case
		{"sh", "", sh},                 // a name on PATH
		{"/opt/x/xb", "", "/opt/x/xb"}, // an absolute path as it is
		{"auto", "no-such-tool-mysecure", ""},
	} {
		got, err := ResolveBackupTool(tc.want, tc.configured)
		if err != nil || got != tc.got {
			t.Errorf("%q (configured %q): %q %v, want %q", tc.want, tc.configured, got, err, tc.got)
		}
	}
	if p, err := ResolveBackupTool("no-such-tool-mysecure", ""); err == nil || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("an unknown name: %q %v, want exec.ErrNotFound", p, err)
	}
}

func TestFindGuardBinary(t *testing.T) {
	if got := FindGuardBinary("/opt/guard"); got != "/opt/guard" {
		t.Errorf("configured: %q", got)
	}
	dir := t.TempDir()
	guard := filepath.Join(dir, "mysqld-guard")
	if err := os.WriteFile(guard, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	// The test binary has no mysqld-guard next to it: PATH's.
	if got := FindGuardBinary(""); got != guard {
		t.Errorf("from PATH: %q, want %q", got, guard)
	}
	t.Setenv("PATH", t.TempDir())
	if got := FindGuardBinary(""); got != "" {
		t.Errorf("none installed: %q", got)
	}
}

func TestLocateServerNotRunning(t *testing.T) {
	p := &Plan{Binary: "/usr/sbin/mariadbd", MountBinary: filepath.Join(t.TempDir(), "protected/usr/sbin/mariadbd"), DataDir: "/srv/db", Wrapper: "/usr/sbin/mariadbd-guard"}
	s, err := LocateServer(p, "root")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Running() || s.UID != 0 || s.GID != 0 {
		t.Errorf("running %v uid %d gid %d, want a stopped server run as root", s.Running(), s.UID, s.GID)
	}
	if got := strings.Join(s.Args(), " "); got != "--datadir=/srv/db --user=root" {
		t.Errorf("args %q", got)
	}
	_, err = LocateServer(p, "no-such-user-mysecure")
	var nu *NoServerUserError
	if !errors.As(err, &nu) || err.Error() != "the server is not running and there is no user no-such-user-mysecure" {
		t.Errorf("a missing user: %v", err)
	}
}

// fakeClient answers SELECT 1 with errs in turn, then succeeds; it
// keeps the option files it was given.
type fakeClient struct {
	errs []error
	cnfs []string
}

func (f *fakeClient) Query(_ context.Context, cnf []byte, sql string) ([][]string, error) {
	if sql != "SELECT 1" {
		return nil, fmt.Errorf("unexpected %q", sql)
	}
	f.cnfs = append(f.cnfs, string(cnf))
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return [][]string{{"1"}}, nil
}

var errRefused = errors.New("refused")

type toolErr struct{ denied bool }

func (e *toolErr) Error() string        { return "mariadb failed: ERROR 1045 (28000): Access denied" }
func (e *toolErr) Is(target error) bool { return e.denied && target == errRefused }

func TestLogin(t *testing.T) {
	args := []string{"--datadir=/d", "--socket=/run/a.sock", "--port=3307", "--socket=/run/mysqld/mysqld.sock"}
	starting := errors.New("Can't connect to local server through socket")
	t.Run("retries while the server starts", func(t *testing.T) {
		c := &fakeClient{errs: []error{starting, starting}}
		l := Login{Client: c, Refused: errRefused, Account: "root", Host: "localhost", Password: []byte("n3w"), ServerArgs: args, Wait: time.Millisecond}
		if err := l.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(c.cnfs) != 3 {
			t.Fatalf("%d attempts, want 3", len(c.cnfs))
		}
		for _, want := range []string{`user="root"`, `password="n3w"`, `socket="/run/mysqld/mysqld.sock"`} {
			if !strings.Contains(c.cnfs[0], want) {
				t.Errorf("option file %q lacks %q", c.cnfs[0], want)
			}
		}
		if strings.Contains(c.cnfs[0], "port") {
			t.Errorf("localhost goes over the socket: %q", c.cnfs[0])
		}
	})
	t.Run("a wildcard host over TCP", func(t *testing.T) {
		c := &fakeClient{}
		l := Login{Client: c, Account: "app", Host: "10.0.0.%", Password: []byte("x"), ServerArgs: args}
		if err := l.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`host="127.0.0.1"`, "port=3307"} {
			if !strings.Contains(c.cnfs[0], want) {
				t.Errorf("option file %q lacks %q", c.cnfs[0], want)
			}
		}
	})
	t.Run("refused: no retry, the message only, a hint", func(t *testing.T) {
		c := &fakeClient{errs: []error{&toolErr{denied: true}, starting}}
		l := Login{Client: c, Refused: errRefused, Account: "root", Host: "localhost", Password: []byte("x"), Wait: time.Millisecond}
		err := l.Check(context.Background())
		if len(c.cnfs) != 1 {
			t.Errorf("%d attempts after a refusal, want 1", len(c.cnfs))
		}
		if err == nil || err.Error() != "the server is back, but root@localhost cannot log in with the new password: mariadb failed: ERROR 1045 (28000): Access denied" {
			t.Fatalf("error %v", err)
		}
		if errors.Is(err, errRefused) {
			t.Error("the error stands for the client's refusal (the backup credentials' exit code)")
		}
		if h, ok := hint.Of(err); !ok || !strings.Contains(h, "SELECT user, host FROM mysql.user") {
			t.Errorf("hint %q", h)
		}
	})
	t.Run("gives up after Attempts", func(t *testing.T) {
		c := &fakeClient{errs: []error{starting, starting, starting, starting}}
		l := Login{Client: c, Account: "root", Host: "localhost", Attempts: 3, Wait: time.Millisecond}
		if err := l.Check(context.Background()); err == nil || !strings.Contains(err.Error(), starting.Error()) {
			t.Fatalf("error %v", err)
		}
		if len(c.cnfs) != 3 {
			t.Errorf("%d attempts, want 3", len(c.cnfs))
		}
	})
	t.Run("stops when the context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c := &fakeClient{errs: []error{starting, starting}}
		l := Login{Client: c, Account: "root", Host: "localhost", Wait: time.Hour}
		if err := l.Check(ctx); err == nil {
			t.Fatal("no error")
		}
		if len(c.cnfs) != 1 {
			t.Errorf("%d attempts after the context ended, want 1", len(c.cnfs))
		}
	})
}

func TestResetHint(t *testing.T) {
	cause := errors.New("SET PASSWORD failed")
	for _, tc := range []struct {
		name       string
		err        error
		wasRunning bool
		msg, hint  string
	}{
		{"init dir", fmt.Errorf("%w: /run/x", ErrInitDir), true, "the init file's directory is out of the server's reach: /run/x", "pass --init-dir"},
		{"restarted", &ResetError{Err: cause, Restarted: true}, true, "SET PASSWORD failed; the password was not changed, the server was started again as before", "the server runs as before"},
		{"was not running", &ResetError{Err: cause, Restarted: true}, false, "SET PASSWORD failed", "the server was not running and stays stopped"},
		{"down", &ResetError{Err: cause, RestartErr: errors.New("x"), HowToStart: "systemctl start mariadb"}, true, "start it by hand: systemctl start mariadb", "start the server with the command above"},
		{"before the stop", cause, true, "SET PASSWORD failed", ""},
	} {
		err := resetHint(tc.err, tc.wasRunning)
		h, _ := hint.Of(err)
		if !strings.Contains(err.Error(), tc.msg) || (tc.hint == "") != (h == "") || !strings.Contains(h, tc.hint) {
			t.Errorf("%s: %q hint %q, want %q hint %q", tc.name, err, h, tc.msg, tc.hint)
		}
	}
	if resetHint(nil, true) != nil {
		t.Error("no error, yet an error")
	}
}
