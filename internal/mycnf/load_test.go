package mycnf

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "my.cnf")
	write(t, f, "[client]\npassword=hunter2\n[broken\n", 0o600)
	_, err := Load(f)
	var se *SyntaxError
	if !errors.As(err, &se) || se.File != f || se.Line != 3 || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v, want *SyntaxError at %s:3 without the value", err, f)
	}

	write(t, f, "[g]\nx=1\n!includedir "+filepath.Join(dir, "none")+"\n", 0o600)
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), f+":3:") {
		t.Fatalf("err = %v, want one naming %s:3", err, f)
	}
}

func TestLoadDepthAndLoops(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "self.cnf")
	write(t, self, "[g]\nx=1\n!include "+self+"\n", 0o644)
	l, err := LoadAll(self)
	if err != nil {
		t.Fatal(err)
	}
	// Depths 0..10 are read, the directive at depth 10 is skipped.
	if len(l.Options) != MaxDepth+1 || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), "depth") {
		t.Fatalf("%d options, warnings %v", len(l.Options), l.Warnings)
	}

	// Two files that each include their directory: 2+4+...+2^10 files for
	// the server; Load stops at 1000.
	d := filepath.Join(dir, "fan")
	for _, n := range []string{"a.cnf", "b.cnf"} {
		write(t, filepath.Join(d, n), "[g]\n!includedir "+d+"\n", 0o644)
	}
	main := filepath.Join(dir, "main.cnf")
	write(t, main, "[g]\n!includedir "+d+"\n", 0o644)
	if _, err := Load(main); !errors.Is(err, errTooMany) {
		t.Fatalf("err = %v, want errTooMany", err)
	}
}

func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/h/")
	for in, want := range map[string]string{
		"~":               "/h/",
		"~/x.cnf":         "/h/x.cnf",
		"~root/x.cnf":     "/root/x.cnf",
		"~no-such-user/x": "~no-such-user/x",
		"/abs/~/x":        "/abs/~/x",
		"rel/x.cnf":       "rel/x.cnf",
		"~root":           "/root",
		"~/":              "/h/",
		"~/a/b/../c.cnf":  "/h/a/b/../c.cnf",
		"~no-such-user":   "~no-such-user",
	} {
		if got := expandHome(in); got != want {
			t.Errorf("expandHome(%q) = %q, want %q", in, got, want)
		}
	}
}
