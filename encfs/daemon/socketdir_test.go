package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

// TestEnsureSocketDir: a missing directory is created with the mode
// asked for; an existing one keeps its mode, and one that group or others
// can write is refused.
func TestEnsureSocketDir(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()

	fresh := filepath.Join(base, "run", "mysecure")
	created, err := ensureSocketDir(fresh, 0o700)
	if err != nil || !created {
		t.Fatalf("missing dir: created %v, %v", created, err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("created with mode %v, want 0700", fi.Mode().Perm())
	}

	for _, tc := range []struct {
		mode   os.FileMode
		refuse bool
	}{
		{0o750, false},
		{0o755, false},
		{0o700, false},
		{0o770, true},
		{0o777, true},
		{os.ModeSticky | 0o777, true}, // sticky does not help: root's socket could be replaced before it exists
	} {
		dir := filepath.Join(base, "existing-"+tc.mode.String())
		os.Mkdir(dir, 0o700)
		os.Chmod(dir, tc.mode)
		created, err := ensureSocketDir(dir, 0o711)
		if created {
			t.Errorf("%v: an existing dir reported as created", tc.mode)
		}
		if tc.refuse != errors.Is(err, ErrUnsafeSocketDir) {
			t.Errorf("%v: err %v, want refused=%v", tc.mode, err, tc.refuse)
		}
		fi, _ := os.Stat(dir)
		if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != tc.mode&(os.ModePerm|os.ModeSticky) {
			t.Errorf("existing dir mode changed from %v to %v", tc.mode, got)
		}
	}

	notRoot := filepath.Join(base, "not-root")
	os.Mkdir(notRoot, 0o700)
	os.Chown(notRoot, 65534, 65534)
	if _, err := ensureSocketDir(notRoot, 0o700); !errors.Is(err, ErrUnsafeSocketDir) {
		t.Errorf("dir owned by nobody: %v", err)
	}
}
