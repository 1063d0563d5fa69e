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
