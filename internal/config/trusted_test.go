package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/testenv"
	"github.com/mysecure/mysecure/internal/trust"
)

func TestCheckTrusted(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "mysecure.yaml")
	if err := os.WriteFile(f, []byte("store: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f, 0o644)
	if err := CheckTrusted(f, 0); err != nil {
		t.Fatalf("root's 0644 file refused: %v", err)
	}
	os.Chmod(f, 0o664)
	err := CheckTrusted(f, 0)
	if !errors.Is(err, trust.ErrUntrusted) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("group-writable config: got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "config file "+f+": ") || !strings.Contains(err.Error(), "0664") {
		t.Errorf("error does not name the file and its mode: %q", err)
	}
	if h, _ := hint.Of(err); h != HintUntrusted {
		t.Errorf("hint = %q", h)
	}
	// Only root's processes are at stake.
	if err := CheckTrusted(f, 1000); err != nil {
		t.Errorf("checked for a non-root process: %v", err)
	}
	// No file, or one that does not exist: nothing to check here.
	if err := CheckTrusted("", 0); err != nil {
		t.Error(err)
	}
	if err := CheckTrusted(filepath.Join(dir, "missing.yaml"), 0); err != nil {
		t.Error(err)
	}
	// A pipe named on root's command line is not a file another user owns.
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if err := CheckTrusted("/dev/fd/"+strconv.Itoa(int(r.Fd())), 0); err != nil {
		t.Errorf("a pipe was refused: %v", err)
	}
}
