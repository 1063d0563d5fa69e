package schedule

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mysecure/mysecure/internal/hint"
)

func TestInstalled(t *testing.T) {
	all := []Job{{Name: "a"}, {Name: "b", System: true}, {Name: "c"}}
	jobs, sel, err := Installed(all, nil)
	if err != nil || len(jobs) != 3 || len(sel) != 0 {
		t.Fatalf("all: %v %v %v", jobs, sel, err)
	}
	// c named, b installed before: both in the file, both marked.
	jobs, sel, err = Installed(all, []string{"c"})
	if err != nil || len(jobs) != 2 || jobs[0].Name != "b" || jobs[1].Name != "c" || !reflect.DeepEqual(sel, map[string]bool{"b": true, "c": true}) {
		t.Fatalf("c: %v %v %v", jobs, sel, err)
	}
	if _, _, err := Installed(all, []string{"nosuch"}); err == nil {
		t.Fatal("an unknown job was selected")
	}
}

// TestWriteGenerated: a generated file is written (parents made) and
// rewritten; a file mysecure did not write is refused and kept; removal
// takes only generated files.
func TestWriteGenerated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cron.d", "mysecure")
	gen := []byte(Marker + "\n* * * * * root true\n")
	if err := WriteGenerated(p, gen, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteGenerated(p, gen, 0o644); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	foreign := filepath.Join(dir, "cron.d", "other")
	os.WriteFile(foreign, []byte("# mine\n"), 0o644)
	err := WriteGenerated(foreign, gen, 0o644)
	if !errors.Is(err, ErrForeignFile) || !errors.Is(err, os.ErrExist) {
		t.Fatalf("foreign file: %v", err)
	}
	if h, _ := hint.Of(err); h != "move it aside first" {
		t.Fatalf("foreign file: hint %q", h)
	}
	if b, _ := os.ReadFile(foreign); string(b) != "# mine\n" {
		t.Fatalf("foreign file changed: %q", b)
	}
	removed := RemoveGenerated([]string{p, foreign, filepath.Join(dir, "none")})
	if !reflect.DeepEqual(removed, []string{p}) {
		t.Fatalf("removed %v", removed)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("foreign file removed: %v", err)
	}
}
