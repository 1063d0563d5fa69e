package demo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTraversable(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open", "sub")
	closed := filepath.Join(dir, "closed", "sub")
	for _, d := range []string{open, closed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "closed"), 0o700)
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	if err := traversable(open); err != nil {
		t.Fatalf("open: %v", err)
	}
	err := traversable(closed)
	if !errors.Is(err, ErrStep) || !strings.Contains(err.Error(), filepath.Join(dir, "closed")+" is mode 0700") || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("closed: %v", err)
	}
}

func TestStepsOrder(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Steps {
		if s == "" || seen[s] {
			t.Fatalf("step %q empty or twice in %v", s, Steps)
		}
		seen[s] = true
	}
	if Steps[0] != StepInit || Steps[len(Steps)-1] != StepCleanup {
		t.Fatalf("the story starts with init and ends with the cleanup: %v", Steps)
	}
}
