package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWrite: the file is replaced with its exact mode whatever the
// umask, and a failed write leaves the old file and no temp file.
func TestWrite(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	os.WriteFile(p, []byte("old"), 0o600)
	if err := Write(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("%q %v", b, fi.Mode())
	}
	// The target is a directory: the rename fails.
	sub := filepath.Join(dir, "sub")
	os.MkdirAll(filepath.Join(sub, "x"), 0o755)
	if err := Write(sub, []byte("y"), 0o600); err == nil {
		t.Fatal("replaced a non-empty directory")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("left behind: %v", ents)
	}
	if err := Write(filepath.Join(dir, "nosuch", "f"), nil, 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

// TestPending: nothing at the path until Commit; Abort leaves nothing;
// Commit after Abort fails; Abort after Commit keeps the file.
func TestPending(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	w, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("the output exists before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if b, _ := os.ReadFile(p); string(b) != "data" {
		t.Fatalf("after Commit and Abort: %q", b)
	}
	w2, err := Create(filepath.Join(dir, "out2"))
	if err != nil {
		t.Fatal(err)
	}
	w2.Write([]byte("half"))
	w2.Abort()
	if err := w2.Commit(); !errors.Is(err, ErrAborted) {
		t.Fatalf("Commit after Abort: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
