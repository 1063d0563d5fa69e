package hardening

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBootOrderStep(t *testing.T) {
	dir := t.TempDir()
	reloads := 0
	s := &BootOrderStep{Unit: "mariadb.service", DropInDir: dir, Reload: func() error { reloads++; return nil }}
	ctx := context.Background()
	done, drift, err := s.Check(ctx)
	if err != nil || done || !strings.Contains(drift, "missing") {
		t.Fatalf("before: %v %q %v", done, drift, err)
	}
	if err := s.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mariadb.service.d", "mysecure-mount.conf"))
	if err != nil || !strings.Contains(string(b), "BindsTo=mysecure.service") || !strings.Contains(string(b), "After=mysecure.service") {
		t.Fatalf("drop-in: %q %v", b, err)
	}
	if done, _, _ := s.Check(ctx); !done || reloads != 1 {
		t.Fatalf("after apply: done %v, reloads %d", done, reloads)
	}
	// Edited by hand: drift.
	os.WriteFile(filepath.Join(dir, "mariadb.service.d", "mysecure-mount.conf"), append(b, "Requires=x\n"...), 0o644)
	if done, drift, _ := s.Check(ctx); done || !strings.Contains(drift, "differs") {
		t.Fatalf("edited: %v %q", done, drift)
	}
	if err := s.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mariadb.service.d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("undo left %v", err)
	}
	// A file of the admin's own is never replaced or removed.
	own := filepath.Join(dir, "mariadb.service.d", "mysecure-mount.conf")
	os.MkdirAll(filepath.Dir(own), 0o755)
	os.WriteFile(own, []byte("[Unit]\nAfter=x\n"), 0o644)
	if err := s.Apply(ctx); !errors.Is(err, os.ErrExist) {
		t.Fatalf("apply over a foreign file: %v", err)
	}
	if err := s.Undo(ctx); err == nil {
		t.Fatal("undo removed a foreign file")
	}
	if b, _ := os.ReadFile(own); string(b) != "[Unit]\nAfter=x\n" {
		t.Fatal("the foreign file changed")
	}
}

// The embedded drop-in says the same as the example the docs install.
func TestBootOrderMatchesExample(t *testing.T) {
	ex, err := os.ReadFile("../examples/mariadb-after-mysecure.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"[Unit]", "After=mysecure.service", "BindsTo=mysecure.service"} {
		if !strings.Contains(string(ex), l) || !strings.Contains(BootOrderDropIn, l) {
			t.Errorf("%q missing from the example or the step", l)
		}
	}
}
