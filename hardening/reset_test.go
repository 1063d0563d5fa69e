package hardening

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"

	"github.com/mysecure/mysecure/internal/procfs"
)

// fakeServer plays the server: StartOnce reads the init file it is given
// (the real FIFO, opened as the server would) and logs like MariaDB.
type fakeServer struct {
	calls      []string
	stopErr    error
	onceErr    error
	startErr   error
	exitEarly  bool   // exit without reading the init file
	initResult string // what the server logs after the init file
	read       string // what it read from the init file
	initPath   string
	initDir    os.FileInfo
	initFile   os.FileInfo
}

type fakeProc struct {
	exited chan struct{}
	log    string
}

func (p *fakeProc) Exited() <-chan struct{}    { return p.exited }
func (p *fakeProc) Stop(context.Context) error { return nil }
func (p *fakeProc) Log() string                { return p.log }

func (f *fakeServer) Stop(context.Context) error {
	f.calls = append(f.calls, "stop")
	return f.stopErr
}

func (f *fakeServer) Start(context.Context) error {
	f.calls = append(f.calls, "start")
	return f.startErr
}

func (f *fakeServer) HowToStart() string { return "run-the-server --as-before" }

func (f *fakeServer) StartOnce(_ context.Context, args []string) (Process, error) {
	f.calls = append(f.calls, "once")
	if f.onceErr != nil {
		return nil, f.onceErr
	}
	p := &fakeProc{exited: make(chan struct{})}
	if f.exitEarly {
		p.log = "[ERROR] InnoDB: the datadir is locked"
		close(p.exited)
		return p, nil
	}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--init-file="); ok {
			f.initPath = v
		}
	}
	f.initDir, _ = os.Stat(filepath.Dir(f.initPath))
	f.initFile, _ = os.Lstat(f.initPath)
	r, err := os.Open(f.initPath)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(r)
	r.Close()
	f.read = string(b)
	p.log = f.initResult
	return p, nil
}

func reachableTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != "/tmp" && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return d
}

func TestResetPassword(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 65534, 65534
	ok := "2026-12-05 0 [Note] mariadbd: ready for connections.\n"
	cases := []struct {
		name      string
		srv       fakeServer
		wantCalls string
		wantErr   string // "" = success
		restarted bool
	}{
		{name: "success", srv: fakeServer{initResult: ok}, wantCalls: "stop once before start"},
		{name: "SET PASSWORD fails", srv: fakeServer{initResult: "ERROR: 1133  Can't find any matching row in the user table\n" + ok},
			wantCalls: "stop once before start", wantErr: "SET PASSWORD failed for app@%: ERROR: 1133  Can't find any matching row", restarted: true},
		{name: "the binary does not start", srv: fakeServer{onceErr: errors.New("permission denied")},
			wantCalls: "stop once before start", wantErr: "could not start the server binary: permission denied; the password was not changed, the server was started again as before", restarted: true},
		{name: "exits before reading", srv: fakeServer{exitEarly: true},
			wantCalls: "stop once before start", wantErr: "exited before reading the init file: [ERROR] InnoDB: the datadir is locked", restarted: true},
		{name: "restart fails too", srv: fakeServer{onceErr: errors.New("boom"), startErr: errors.New("no luck")},
			wantCalls: "stop once before start", wantErr: "the server could not be started again (no luck): start it by hand: run-the-server --as-before"},
		{name: "stop fails: nothing else", srv: fakeServer{stopErr: errors.New("still running")},
			wantCalls: "stop", wantErr: "could not stop the server: still running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := reachableTempDir(t)
			srv := tc.srv
			// BeforeRestart (HostReset's removal of its rule) runs
			// before every restart, and only then.
			err := ResetPassword(context.Background(), &srv, ResetRequest{Account: "app", Host: "%", Password: []byte(`p'w\`),
				InitDir: parent, UID: uid, GID: gid, ReadTimeout: 10 * time.Second,
				BeforeRestart: func() { srv.calls = append(srv.calls, "before") }})
			if got := strings.Join(srv.calls, " "); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var re *ResetError
			if got := errors.As(err, &re) && re.Restarted; got != tc.restarted {
				t.Errorf("restarted = %v, want %v (%v)", got, tc.restarted, err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("the init directory was left behind: %v", ents)
			}
			if srv.initPath == "" {
				return
			}
			if want := `SET PASSWORD FOR 'app'@'%' = PASSWORD('p\'w\\');` + "\n"; srv.read != want {
				t.Errorf("the server read %q, want %q", srv.read, want)
			}
			// Only the server's uid reads the FIFO; only its group enters
			// the directory, which nobody but root may change.
			st := srv.initFile.Sys().(*syscall.Stat_t)
			if srv.initFile.Mode()&os.ModeNamedPipe == 0 || srv.initFile.Mode().Perm() != 0o600 || st.Uid != uid {
				t.Errorf("init file %v uid %d", srv.initFile.Mode(), st.Uid)
			}
			dst := srv.initDir.Sys().(*syscall.Stat_t)
			if srv.initDir.Mode().Perm() != 0o710 || dst.Uid != 0 || dst.Gid != gid {
				t.Errorf("init directory %v %d:%d, want 0710 0:%d", srv.initDir.Mode(), dst.Uid, dst.Gid, gid)
			}
		})
	}
}

// TestResetPasswordInitDirOutOfReach: a directory the server cannot enter
// (like /run/mysecure, 0700) is refused before the server is stopped.
func TestResetPasswordInitDirOutOfReach(t *testing.T) {
	testenv.RequireRoot(t)
	parent := reachableTempDir(t)
	private := filepath.Join(parent, "mysecure")
	os.Mkdir(private, 0o700)
	writable := filepath.Join(parent, "open")
	os.Mkdir(writable, 0o777)
	os.Chmod(writable, 0o777)
	for dir, want := range map[string]string{private: "cannot enter", writable: "may be changed by others", filepath.Join(parent, "nonexistent"): "no such file"} {
		srv := &fakeServer{}
		err := ResetPassword(context.Background(), srv, ResetRequest{Account: "root", Host: "localhost", InitDir: dir, UID: 65534, GID: 65534})
		if !errors.Is(err, ErrInitDir) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInitDir (%s)", dir, err, want)
		}
		if len(srv.calls) != 0 {
			t.Errorf("%s: the server was touched: %v", dir, srv.calls)
		}
	}
}

func TestUnitFromCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"0::/system.slice/mariadb.service\n":                     "mariadb.service",
		"12:pids:/system.slice/mysql.service\n0::/system.slice/": "mysql.service",
		"0::/user.slice/user-0.slice/session-3.scope\n":          "",
		"0::/user.slice/user-0.slice/user@0.service/app.slice\n": "",
		"0::/\n": "",
	} {
		if got := unitFromCgroup(procfs.ParseCgroup([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestErrorLogPath(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--datadir=/d", "--log-error=/var/log/mysql/error.log"}, "/var/log/mysql/error.log"},
		{[]string{"--datadir=/a", "--datadir=/d", "--log-error=host"}, "/d/host.err"},
		{[]string{"--log-error=rel.log"}, ""},
		{[]string{"--datadir=/d"}, ""},
	} {
		if got := errorLogPath(tc.args); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestIsMysqldSafe(t *testing.T) {
	for argv, want := range map[string]bool{
		"/bin/sh /usr/bin/mysqld_safe --datadir=/x": true,
		"mysqld_safe":                     true,
		"/bin/bash -c mysqld_safe":        false,
		"/usr/sbin/mariadbd --datadir=/x": false,
	} {
		if got := isMysqldSafe(strings.Fields(argv)); got != want {
			t.Errorf("%q: %v", argv, got)
		}
	}
}
