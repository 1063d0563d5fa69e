package hardening

import (
	"context"
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
	if err := s.Apply(context.Background()); err == nil || !strings.Contains(err.Error(), "mysecure harden mysqld") {
		t.Fatalf("apply: %v", err)
	}
}
