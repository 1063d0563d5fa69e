package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/sshclient"
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
func (failingJobs) Code(err error) string { return backup.Jobs{}.Code(err) }

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
		fmt.Errorf("mysecure.conf: %w", volume.ErrTampered),
		fmt.Errorf("mysecure.conf: %w", volume.ErrCorruptConfig),
		fmt.Errorf("mysecure.conf: %w", volume.ErrUnsupported),
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
		fmt.Errorf("dial: %w", sshclient.ErrHostKey),
		sshclient.ErrConfig,
		sshclient.ErrAuth,
		&sshclient.ForwardError{Network: "tcp", Remote: "127.0.0.1:3306", Err: errors.New("refused")},
		errors.New("something unexpected"),
	}
	client, _ := daemontest.Serve(t, failingJobs{errs: errs}, backup.WireError)
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
