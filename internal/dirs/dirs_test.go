package dirs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMkdirAllModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	os.Chmod(base, 0o711)
	store := filepath.Join(base, "var", "lib", "mysecure", "storage")
	if err := MkdirAll(store, 0o755, 0o700); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		filepath.Join(base, "var"):                    0o755,
		filepath.Join(base, "var", "lib"):             0o755,
		filepath.Join(base, "var", "lib", "mysecure"): 0o755,
		store: 0o700,
		base:  0o711, // existed: unchanged
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	// An existing directory keeps its mode.
	os.Chmod(store, 0o750)
	if err := MkdirAll(store, 0o755, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(store); fi.Mode().Perm() != 0o750 {
		t.Errorf("existing dir changed to %04o", fi.Mode().Perm())
	}
	f := filepath.Join(base, "file")
	os.WriteFile(f, nil, 0o644)
	if err := MkdirAll(f, 0o755, 0o755); err == nil {
		t.Error("a file accepted as a directory")
	}
}
