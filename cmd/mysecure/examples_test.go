package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/robfig/cron/v3"
)

// TestExamples: the quickstart config loads with the real loader (strict:
// an unknown key is a usage error), its schedules validate, and
// examples/mysecure.cron is exactly what `schedule install --cron` writes
// for them (with the installed binary and config paths), so the example
// cannot drift from the code. Each line parses as a 5-field cron spec.
func TestExamples(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mysecure.yaml")
	b, err := os.ReadFile("../../examples/mysecure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfg, "schedule", "list"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("schedule list with the example config: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, name := range []string{"nightly", "weekly-physical"} {
		if !strings.Contains(out.String(), name) {
			t.Fatalf("schedule list lacks %s:\n%s", name, out.String())
		}
	}
	cronFile := filepath.Join(dir, "cron")
	out.Reset()
	errb.Reset()
	if code := run([]string{"--config", cfg, "schedule", "install", "--cron", "--cron-file", cronFile}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("schedule install --cron: exit %d\n%s%s", code, out.String(), errb.String())
	}
	got, err := os.ReadFile(cronFile)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	norm := strings.NewReplacer(exe, "/usr/local/bin/mysecure", cfg, "/etc/mysecure/mysecure.yaml").Replace(string(got))
	want, err := os.ReadFile("../../examples/mysecure.cron")
	if err != nil {
		t.Fatal(err)
	}
	if norm != string(want) {
		t.Fatalf("examples/mysecure.cron differs from what schedule install --cron writes:\n--- generated\n%s\n--- examples/mysecure.cron\n%s", norm, want)
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	jobs := 0
	for _, l := range strings.Split(string(want), "\n") {
		f := strings.Fields(l)
		if len(f) < 7 || strings.HasPrefix(l, "#") || strings.Contains(f[0], "=") {
			continue
		}
		if _, err := p.Parse(strings.Join(f[:5], " ")); err != nil {
			t.Errorf("cron line %q: %v", l, err)
		}
		if f[5] != "root" || f[6] != "/usr/local/bin/mysecure" {
			t.Errorf("cron line %q: want user root and /usr/local/bin/mysecure", l)
		}
		jobs++
	}
	if jobs != 2 {
		t.Fatalf("%d job lines in examples/mysecure.cron, want 2", jobs)
	}
}
