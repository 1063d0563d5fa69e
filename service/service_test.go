package service

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/testenv"
)

// mounted is a real daemon on a fresh volume, mounted, with the paths Run
// needs and a systemd notify socket.
type mounted struct {
	d      *daemon.Daemon
	cfg    Config
	notify *net.UnixConn
}

func mount(t *testing.T) *mounted {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	m := &mounted{}
	sock := filepath.Join(dir, "run", "control.sock")
	mnt := filepath.Join(dir, "mnt")
	m.d, err = daemon.New(daemon.Config{Store: store, Mount: mnt, Socket: sock,
		AuditLog: filepath.Join(dir, "audit.log")}, vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.d.Close)
	if err := m.d.Mount(); err != nil {
		t.Fatal(err)
	}
	notify := filepath.Join(dir, "notify")
	m.notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.notify.Close() })
	m.cfg = Config{Socket: sock, Mount: mnt, NotifySocket: notify, signals: make(chan os.Signal, 1)}
	return m
}

// next returns the next systemd notification.
func (m *mounted) next(t *testing.T) string {
	t.Helper()
	m.notify.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 256)
	n, err := m.notify.Read(buf)
	if err != nil {
		t.Fatalf("no systemd notification: %v", err)
	}
	return string(buf[:n])
}

func within(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// TestRunLifecycle: ready (the control socket answers, the recovery
// started, systemd told), SIGHUP reloads the schedules, SIGTERM unmounts
// and Run returns nil after telling systemd it stops.
func TestRunLifecycle(t *testing.T) {
	m := mount(t)
	var inForce schedule.JobList
	reads := make(chan struct{}, 1)
	sc := &Schedules{
		Runner:  &schedule.Runner{History: &schedule.History{Dir: t.TempDir()}, LockDir: t.TempDir(), Jobs: inForce.Load},
		InForce: &inForce,
		Read: func() ([]schedule.Job, error) {
			reads <- struct{}{}
			return nil, nil
		},
	}
	if _, err := sc.Reload(); err == nil {
		t.Fatal("Reload before Run: no error")
	}
	ready, recovered, owned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	m.cfg.Schedules = sc
	m.cfg.Ready = func() {
		if _, err := daemon.NewClient(m.cfg.Socket).Status(context.Background()); err != nil {
			t.Errorf("ready, but the control socket does not answer: %v", err)
		}
		close(ready)
	}
	m.cfg.Recover = func() { close(recovered) }
	m.cfg.OwnSignals = func() { close(owned) }
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), m.d, m.cfg) }()
	within(t, ready, "Ready")
	within(t, recovered, "Recover")
	if got := m.next(t); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	within(t, owned, "OwnSignals")

	m.cfg.signals <- syscall.SIGHUP
	within(t, reads, "the schedule reload on SIGHUP")
	if n, err := sc.Reload(); err != nil || n != 0 {
		t.Fatalf("Reload = %d, %v; want 0 jobs", n, err)
	}
	<-reads

	m.cfg.signals <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	if got := m.next(t); got != "STOPPING=1" {
		t.Fatalf("last notification %q, want STOPPING=1", got)
	}
	if _, err := daemon.NewClient(m.cfg.Socket).Status(context.Background()); !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("status after Run returned: %v, want ErrNotRunning", err)
	}
}

// TestRunDetached: a mount taken away from outside ends Run with
// daemon.ErrDetached, and systemd is not told of a clean stop.
func TestRunDetached(t *testing.T) {
	m := mount(t)
	ready := make(chan struct{})
	m.cfg.Ready = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), m.d, m.cfg) }()
	within(t, ready, "Ready")
	if got := m.next(t); got != "READY=1" {
		t.Fatalf("notification %q, want READY=1", got)
	}
	if err := daemon.LazyUnmount(m.cfg.Mount); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, daemon.ErrDetached) {
			t.Fatalf("Run after a lazy unmount: %v, want ErrDetached", err)
		}
		if h, _ := hint.Of(err); h != "unmount with 'mysecure umount'; see the audit log" {
			t.Fatalf("hint %q", h)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after a lazy unmount")
	}
	m.notify.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := m.notify.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a notification after a detach: %d bytes", n)
	}
}
