package backup

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreOptionsAbsolute: the paths a restore writes to or reads from
// are made absolute against the caller's directory (the daemon runs in
// /); empty ones stay empty, and nothing else changes.
func TestRestoreOptionsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	o := RestoreOptions{ID: "x", FromDir: "copied/b1", Target: "/srv/../srv/restore", CopyBack: "", RenameTo: "db2", Credentials: "c"}
	if err := o.Absolute(); err != nil {
		t.Fatal(err)
	}
	want := RestoreOptions{ID: "x", FromDir: filepath.Join(wd, "copied/b1"), Target: "/srv/restore", RenameTo: "db2", Credentials: "c"}
	if o != want {
		t.Errorf("got %+v, want %+v", o, want)
	}
	o = RestoreOptions{CopyBack: "data"}
	if err := o.Absolute(); err != nil || o.CopyBack != filepath.Join(wd, "data") || o.Target != "" || o.FromDir != "" {
		t.Errorf("got %+v, %v", o, err)
	}
}
