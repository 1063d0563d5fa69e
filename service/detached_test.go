package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/hint"
)

// childEnv names what the test binary does when started as a child by
// StartDetached or RunRecovery (TestMain).
const childEnv = "MYSECURE_SERVICE_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child plays the daemon (or the recovery child) in mode.
func child(mode string) int {
	switch mode {
	case "ready", "fail":
		cred, err := ReceiveCredential(os.NewFile(CredentialFD, "credential"))
		if err != nil {
			fmt.Println("credential:", err)
			return 1
		}
		wd, _ := os.Getwd()
		// For the parent's checks, in the log: the credential came, the
		// child leads its own session, its directory is /.
		fmt.Printf("passphrase=%s salt=%s sid=%v wd=%s\n", cred.Passphrase, cred.Salt, sid() == os.Getpid(), wd)
		rep := Report{OK: true}
		if mode == "fail" {
			rep = Report{Error: "wrong passphrase", Hint: "try again", Code: 3}
		}
		rep.Send(os.NewFile(ReadyFD, "ready"))
		return 0
	case "silent":
		fmt.Println("dying without a report")
		return 4
	case "recover":
		token, _ := io.ReadAll(os.NewFile(3, "token"))
		fmt.Printf("token=%s", token)
		return 0
	case "recover-fail":
		fmt.Print("journal unreadable")
		return 2
	}
	return 99
}

func sid() int {
	s, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	return int(s)
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestStartDetached(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		wantErr func(t *testing.T, err error)
	}{
		{"ready", nil},
		{"fail", func(t *testing.T, err error) {
			var f *Failed
			if !errors.As(err, &f) {
				t.Fatalf("err %v (%T), want *Failed", err, err)
			}
			if want := (Report{Error: "wrong passphrase", Hint: "try again", Code: 3}); f.Report != want || f.Error() != want.Error {
				t.Fatalf("report %+v, want %+v", f.Report, want)
			}
		}},
		{"silent", func(t *testing.T, err error) {
			if !errors.Is(err, ErrNoReport) {
				t.Fatalf("err %v, want ErrNoReport", err)
			}
			if h, _ := hint.Of(err); !strings.HasPrefix(h, "see ") || !strings.HasSuffix(h, "daemon.log") {
				t.Fatalf("hint %q, want the log file", h)
			}
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv(childEnv, tc.mode)
			// The log's directory does not exist yet.
			logFile := filepath.Join(t.TempDir(), "log", "daemon.log")
			cred := &Credential{Passphrase: []byte("pw"), Salt: []byte("na")}
			pid, err := StartDetached(Detached{Exe: testExe(t), LogFile: logFile, Credential: cred})
			if tc.wantErr != nil {
				tc.wantErr(t, err)
				if pid != 0 {
					t.Fatalf("pid %d with an error", pid)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if pid <= 0 || pid == os.Getpid() {
				t.Fatalf("pid %d", pid)
			}
			fi, err := os.Stat(logFile)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
			}
			if di, err := os.Stat(filepath.Dir(logFile)); err != nil || di.Mode().Perm() != 0o750&^umask() {
				t.Errorf("log dir: %v %v", di.Mode().Perm(), err)
			}
			// The child wrote before its report, so its line is there.
			log, _ := os.ReadFile(logFile)
			want := "passphrase=pw salt=na sid=true wd=/\n"
			if tc.mode == "silent" {
				want = "dying without a report\n"
			}
			if string(log) != want {
				t.Fatalf("log %q, want %q", log, want)
			}
		})
	}
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestStartDetachedNoProgram(t *testing.T) {
	_, err := StartDetached(Detached{Exe: filepath.Join(t.TempDir(), "missing"), LogFile: filepath.Join(t.TempDir(), "l")})
	if err == nil || !strings.HasPrefix(err.Error(), "failed to start the daemon: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}

func TestRunRecovery(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		tokenErr error
		want     []string
	}{
		{"recover", nil, []string{`"level":"INFO"`, `"msg":"journal recovery"`, `"output":"token=secret-token"`}},
		{"recover-fail", nil, []string{`"level":"ERROR"`, `"msg":"journal recovery failed"`, `"error":"exit status 2"`, `"output":"journal unreadable"`}},
		{"recover", errors.New("no key"), []string{`"msg":"journal recovery not started"`, `"error":"no key"`}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv(childEnv, tc.mode)
			var buf bytes.Buffer
			token := []byte("secret-token")
			RunRecovery(Recovery{Exe: testExe(t), Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
				Token: func() ([]byte, error) { return token, tc.tokenErr }})
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %s: no %s", buf.String(), w)
				}
			}
			if tc.tokenErr == nil && !bytes.Equal(token, make([]byte, len(token))) {
				t.Errorf("the token was not cleared: %q", token)
			}
		})
	}
}

func TestAlreadyMounted(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        daemon.Status
		wantDone bool
		wantErr  bool
	}{
		{"not mounted", daemon.Status{Store: "/other", Mount: "/m"}, false, false},
		{"same", daemon.Status{Mounted: true, Store: "/s", Mount: "/m"}, true, false},
		{"other store", daemon.Status{Mounted: true, Store: "/other", Mount: "/m"}, false, true},
		{"other mount", daemon.Status{Mounted: true, Store: "/s", Mount: "/other"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, err := AlreadyMounted(tc.s, "/s", "/m", "/run/sock")
			if done != tc.wantDone || (err != nil) != tc.wantErr {
				t.Fatalf("AlreadyMounted = %v, %v", done, err)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, daemon.ErrAlreadyMounted) {
				t.Fatalf("err %v, want ErrAlreadyMounted", err)
			}
			if want := "the daemon on /run/sock serves " + tc.s.Store + " on " + tc.s.Mount; !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("err %q, want ...%q", err, want)
			}
			if h, _ := hint.Of(err); !strings.Contains(h, "--socket") {
				t.Fatalf("hint %q", h)
			}
		})
	}
}

func TestUnmountNothing(t *testing.T) {
	dir := t.TempDir()
	c := daemon.NewClient(filepath.Join(dir, "none.sock"))
	_, err := Unmount(context.Background(), c, dir)
	if !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("err %v, want ErrNotRunning", err)
	}
	if h, _ := hint.Of(err); h != "nothing to unmount" {
		t.Fatalf("hint %q", h)
	}
	if IsStaleMount(dir) {
		t.Fatal("a plain directory is a stale mount")
	}
}

// TestUnmount: a busy mount is refused with its hint and keeps serving;
// once idle, Unmount returns after the daemon let go of its socket.
func TestUnmount(t *testing.T) {
	m := mount(t)
	ready := make(chan struct{})
	m.cfg.Ready = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), m.d, m.cfg) }()
	within(t, ready, "Ready")
	c := daemon.NewClient(m.cfg.Socket)

	busy, err := os.Open(m.cfg.Mount)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Unmount(context.Background(), c, m.cfg.Mount)
	busy.Close()
	if !errors.Is(err, daemon.ErrInUse) {
		t.Fatalf("Unmount of a busy mount: %v, want ErrInUse", err)
	}
	if h, _ := hint.Of(err); !strings.Contains(h, "stop the programs using the mount") {
		t.Fatalf("hint %q", h)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("the daemon stopped serving after a refused unmount: %v", err)
	}

	what, err := Unmount(context.Background(), c, m.cfg.Mount)
	if err != nil || what != UnmountedDaemon {
		t.Fatalf("Unmount = %v, %v", what, err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("status after Unmount: %v, want ErrNotRunning", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after Unmount")
	}
}
