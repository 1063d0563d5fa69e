package inplace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The crash tests run Encrypt or Decrypt in a child process (this test
// binary, re-executed into TestHelperProcess) that SIGKILLs itself at a
// given step, then run Recover and check the outcome.

const helperEnv = "MYSECURE_INPLACE_HELPER"

// TestHelperProcess is not a test: it is the child of the crash tests.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	at := os.Getenv("INPLACE_STEP")
	testHookStep = func(s string) {
		if s == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	o := Options{
		JournalDir: os.Getenv("INPLACE_JOURNAL"),
		MountDir:   os.Getenv("INPLACE_MOUNT"),
		StoreDir:   os.Getenv("INPLACE_STORE"),
	}
	path, dst := os.Getenv("INPLACE_PATH"), os.Getenv("INPLACE_DST")
	var err error
	switch os.Getenv("INPLACE_OP") {
	case "encrypt":
		err = Encrypt(context.Background(), path, dst, o)
	case "decrypt":
		err = Decrypt(context.Background(), path, dst, o)
	default:
		err = errors.New("bad INPLACE_OP")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0) // the step was never reached
}

// crashAt runs op in a child that kills itself at step; it reports whether
// it did (false: the job finished without reaching the step).
func crashAt(t *testing.T, e *env, op, step string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		"INPLACE_OP="+op,
		"INPLACE_STEP="+step,
		"INPLACE_PATH="+e.path,
		"INPLACE_DST="+e.dst,
		"INPLACE_JOURNAL="+e.o.JournalDir,
		"INPLACE_MOUNT="+e.o.MountDir,
		"INPLACE_STORE="+e.o.StoreDir,
	)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("helper %s at %s: %v\n%s", op, step, err, out)
	}
	return false
}

func TestCrashRecovery(t *testing.T) {
	requireRoot(t)
	type stepCase struct {
		step    string
		forward bool // recovery must complete the job (else roll it back)
		dirOnly bool // the step happens for directories only
	}
	ops := []struct {
		op    string
		steps []stepCase
	}{
		{"encrypt", []stepCase{
			{step: "encrypt:copying"},
			{step: "encrypt:copy-partial"},
			{step: "encrypt:copy-done"},
			{step: "encrypt:copied", forward: true},
			{step: "encrypt:link-created", forward: true},
			{step: "encrypt:old-moved", forward: true},
			{step: "encrypt:linked", forward: true},
			{step: "encrypt:swapped", forward: true},
			{step: "encrypt:old-removed", forward: true},
			{step: "encrypt:done", forward: true},
		}},
		{"decrypt", []stepCase{
			{step: "decrypt:copying"},
			{step: "decrypt:copy-partial"},
			{step: "decrypt:copy-done"},
			{step: "decrypt:copied", forward: true},
			{step: "decrypt:unlinked", forward: true, dirOnly: true},
			{step: "decrypt:renamed", forward: true},
			{step: "decrypt:swapped", forward: true},
			{step: "decrypt:dst-removed", forward: true},
			{step: "decrypt:done", forward: true},
		}},
	}
	kinds := []struct {
		name  string
		build func(*testing.T, string)
		dir   bool
	}{
		{"tree", buildTree, true},
		{"file", buildFile, false},
	}
	for _, k := range kinds {
		for _, op := range ops {
			for _, sc := range op.steps {
				if sc.dirOnly && !k.dir {
					continue // a file replaces the symlink in one rename: no such step
				}
				t.Run(k.name+"/"+sc.step, func(t *testing.T) {
					// Independent trees and journals; the parent never sets
					// testHookStep here.
					t.Parallel()
					e := newEnv(t)
					k.build(t, e.path)
					orig := takeSnapshot(t, e.path)
					if op.op == "decrypt" {
						if err := Encrypt(context.Background(), e.path, e.dst, e.o); err != nil {
							t.Fatal(err)
						}
					}
					if !crashAt(t, e, op.op, sc.step) {
						t.Fatalf("the helper never reached step %s", sc.step)
					}

					lines, err := Recover(e.o)
					if err != nil {
						t.Fatalf("Recover: %v", err)
					}
					t.Logf("Recover: %q", lines)
					wantLines := 1
					if strings.HasSuffix(sc.step, ":done") {
						wantLines = 0 // the journal was already gone
					}
					if len(lines) != wantLines {
						t.Errorf("Recover returned %d lines, want %d", len(lines), wantLines)
					}
					if wantLines == 1 {
						verb := "completed "
						if !sc.forward {
							verb = "rolled back "
						}
						if !strings.HasPrefix(lines[0], verb+op.op+" of "+e.path+" (") {
							t.Errorf("line %q, want it to start with %q", lines[0], verb+op.op)
						}
					}

					encrypted := (op.op == "encrypt") == sc.forward
					if encrypted {
						assertEncrypted(t, e, orig)
					} else {
						assertPlain(t, e, orig)
					}

					if lines, err := Recover(e.o); err != nil || len(lines) != 0 {
						t.Errorf("second Recover = %q, %v; want nothing", lines, err)
					}
				})
			}
		}
	}
}

// After a crash with a complete copy, recovery still rolls back when the
// original is in use or changed since the copy.
func TestRecoverRollsBackUnsafeSwap(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		meddle func(t *testing.T, e *env)
		reason string
	}{
		{"in use", func(t *testing.T, e *env) {
			startHolder(t, filepath.Join(e.path, "x"), "")
		}, "in use"},
		{"changed", func(t *testing.T, e *env) {
			writeFile(t, filepath.Join(e.path, "a", "new"), []byte("new"), 0o644)
		}, "changed while it was being copied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			buildTree(t, e.path)
			if !crashAt(t, e, "encrypt", "encrypt:copied") {
				t.Fatal("the helper never reached encrypt:copied")
			}
			tt.meddle(t, e)
			orig := takeSnapshot(t, e.path)
			lines, err := Recover(e.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "rolled back encrypt of ") || !strings.Contains(lines[0], tt.reason) {
				t.Errorf("Recover = %q, want a rollback because %s", lines, tt.reason)
			}
			assertPlain(t, e, orig)
		})
	}
}
