package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/engine"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
)

// TestRefusalExitCodes: the refusals of engine disable and harden carry
// their hints as *hint.Error; classify gives them the exit codes and
// hints the command printed before (engine: usage, 2; harden without a
// daemon: not mounted, 8).
func TestRefusalExitCodes(t *testing.T) {
	d := &engine.Disable{Setup: &engine.Setup{Opts: engine.Options{Flavor: engine.MySQL}}}
	_, err := d.Stage()
	code, h := classify(err)
	if code != exitUsage || oneLine(err) != "engine disable supports MariaDB only" || h != "MySQL decrypts a table with ALTER TABLE ... ENCRYPTION='N' (see docs/engine.md)" {
		t.Errorf("engine refusal: %d %q hint %q", code, oneLine(err), h)
	}

	proc := &hardening.Procedure{Client: daemon.NewClient(filepath.Join(t.TempDir(), "no.sock"))}
	refusals := proc.Refusals(context.Background(), &hardening.Plan{Binary: filepath.Join(t.TempDir(), "mariadbd")}, false)
	if len(refusals) != 1 {
		t.Fatalf("refusals without a daemon: %v", refusals)
	}
	code, h = classify(refusals[0])
	if code != exitNotMounted || h != "mount the volume first ('mysecure mount')" || strings.HasPrefix(refusals[0].Error(), "refused") {
		t.Errorf("harden refusal: %d %q hint %q", code, refusals[0], h)
	}
}

// TestHardenedExitCode: 'harden mysqld' on a hardened host returns
// Detect's error as is; classify gives it exit 6 and the --undo hint.
func TestHardenedExitCode(t *testing.T) {
	state := filepath.Join(t.TempDir(), "harden.json")
	if err := os.WriteFile(state, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := hardening.Detect(hardening.Options{StatePath: state})
	if !errors.Is(err, hardening.ErrHardened) {
		t.Fatalf("Detect with a state file: %v", err)
	}
	if code, h := classify(err); code != exitFile || h != "'mysecure harden mysqld --undo' restores the plain setup" {
		t.Errorf("already hardened: %d hint %q", code, h)
	}
}

// fileStep creates a file; Apply fails with err, Undo with undoErr.
type fileStep struct {
	path         string
	err, undoErr error
}

func (s fileStep) ID() string       { return "file:" + s.path }
func (s fileStep) Describe() string { return "create " + s.path }
func (s fileStep) Check(context.Context) (bool, string, error) {
	_, err := os.Stat(s.path)
	return err == nil, "missing", nil
}
func (s fileStep) Apply(context.Context) error {
	if err := os.WriteFile(s.path, nil, 0o600); err != nil {
		return err
	}
	return s.err
}
func (s fileStep) Undo(context.Context) error {
	if s.undoErr != nil {
		return s.undoErr
	}
	return os.Remove(s.path)
}

// TestApplyPlanHints: a failed plan run rolled back keeps the failed
// step's own hint after rolledBack; one that could not be rolled back
// names the state file.
func TestApplyPlanHints(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	g := &globalOptions{p: &printer{out: &out, err: &out}}
	failing := hint.Wrap(errors.New("no room"), "free some space")
	for _, tc := range []struct {
		name     string
		undoErr  error
		wantHint string
	}{
		{"rolled back", nil, "nothing was left changed. free some space"},
		{"not undone", errors.New("busy"), "what could not be undone is recorded in " + filepath.Join(dir, "state.json") + "; fix the cause and run again (it resumes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "state.json"))
			steps := []plan.Step{fileStep{path: filepath.Join(dir, "a"), undoErr: tc.undoErr}, fileStep{path: filepath.Join(dir, "b"), err: failing}}
			r := &plan.Runner{StatePath: filepath.Join(dir, "state.json")}
			res, err := applyPlan(context.Background(), g, r, "t", steps, false, "run again", "nothing was left changed. ")
			if res != nil || err == nil {
				t.Fatalf("applyPlan = %v, %v", res, err)
			}
			if _, h := classify(err); h != tc.wantHint {
				t.Errorf("hint %q, want %q", h, tc.wantHint)
			}
			os.Remove(filepath.Join(dir, "a"))
			os.Remove(filepath.Join(dir, "b"))
		})
	}
	if !strings.Contains(out.String(), "failed:    create "+filepath.Join(dir, "b")+": no room") {
		t.Errorf("events:\n%s", out.String())
	}
}
