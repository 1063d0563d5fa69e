package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

// failingJobs fails every job with the error the request's "n" names.
type failingJobs struct{ errs []error }

func (j failingJobs) Run(_ context.Context, raw json.RawMessage, _ bool, _ func(any)) (any, error) {
	var req struct{ N int }
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	return nil, j.errs[req.N]
}

// Code is the daemon side of what the CLI's job runner does.
func (failingJobs) Code(err error) string { return jobRunner{}.Code(err) }

// TestClassifySameThroughDaemon: an error classified here and the same
// error reported by a real daemon's control socket (a job that fails with
// it) give the same exit code. Before one taxonomy, a missing file exited
// 6 here and 2 through the daemon, and an unknown category inside a job
// exited 1.
func TestClassifySameThroughDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	errs := []error{
		fmt.Errorf("open /x: %w", os.ErrNotExist),
		fmt.Errorf("%w @nosuch", volume.ErrUnknownCategory),
		volume.ErrIncorrectCredentials,
		volume.ErrCategoryInUse,
		volume.ErrCategoryExists,
		volume.ErrBadCategoryName,
		volume.ErrLastCategory,
		fmt.Errorf("rules.json: %w", rollback.ErrRollback),
		fmt.Errorf("write: %w", os.ErrExist),
		fmt.Errorf("open: %w", os.ErrPermission),
		fmt.Errorf("backup x: %w", backup.ErrNotFound),
		backup.ErrCorrupt,
		content.ErrCorrupt,
		backup.ErrToolMissing,
		backup.ErrBusy,
		backup.ErrDenied,
		backup.ErrUsage,
		backup.ErrExists,
		backup.ErrLocked,
		backup.ErrObjectStore,
		&backup.ToolError{Tool: "mariadb-dump", Status: "exit status 2"},
		&backup.ToolError{Tool: "mariadb-dump", Status: "exit status 2", AccessDenied: true},
		&backup.ToolError{Tool: "mariadb-dump", Status: "exit status 2", MissingPrivilege: true},
		&backup.PrivilegeError{Op: "restore", Account: "r@%", Missing: map[string][]string{"*.*": {"SUPER"}}},
		fmt.Errorf("write: %w", syscall.ENOSPC),
		context.Canceled,
		errors.New("something unexpected"),
	}
	client := serveJobs(t, failingJobs{errs: errs})
	for i, want := range errs {
		err := client.Job(context.Background(), map[string]int{"n": i}, nil, nil)
		if err == nil {
			t.Fatalf("%v: the job did not fail", want)
		}
		lc, _ := classify(want)
		dc, _ := classify(err)
		if lc != dc {
			t.Errorf("%v: exit %d here, %d through the daemon", want, lc, dc)
		}
	}
	// The two bugs this test was written for, by number.
	if c, _ := classify(fmt.Errorf("open /x: %w", os.ErrNotExist)); c != exitFile {
		t.Errorf("missing file: exit %d, want %d", c, exitFile)
	}
	if c, _ := classify(volume.ErrUnknownCategory); c != exitUsage {
		t.Errorf("unknown category: exit %d, want %d", c, exitUsage)
	}
}

// serveJobs runs a daemon's control socket (no mount) on a fresh volume
// with jobs, and returns a client for it as the CLI makes one.
func serveJobs(t *testing.T, jobs daemon.Jobs) *daemon.Client {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "control.sock")
	d, err := daemon.New(daemon.Config{Store: store, Mount: filepath.Join(dir, "mnt"), Socket: sock,
		AuditLog: filepath.Join(dir, "audit.log"), Jobs: jobs}, vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.ServeControl(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
	})
	c := daemon.NewClient(sock).WithJobErrors(backup.WireError)
	for i := 0; ; i++ {
		if _, err := c.Status(context.Background()); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("the control socket does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}
