package hardening

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGuardStepNotHardened(t *testing.T) {
	s := &GuardStep{Options: Options{Binary: "/usr/sbin/mariadbd", StatePath: filepath.Join(t.TempDir(), "state.json")}}
	done, drift, err := s.Check(context.Background())
	if err != nil || done || !strings.Contains(drift, "guard missing: /usr/sbin/mariadbd is not hardened") {
		t.Fatalf("check: %v %q %v", done, drift, err)
	}
	// Apply runs the harden procedure: without a mount it stops before
	// anything changes, and Undo has nothing to revert.
	if err := s.Apply(context.Background()); err == nil || !strings.Contains(err.Error(), "mount point is not configured") {
		t.Fatalf("apply: %v", err)
	}
	if _, err := os.Stat(s.Options.StatePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused apply wrote the state: %v", err)
	}
	if err := s.Undo(context.Background()); err != nil {
		t.Fatalf("undo: %v", err)
	}
}
