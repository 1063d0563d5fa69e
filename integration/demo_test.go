package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/demo"
	"github.com/mysecure/mysecure/internal/testenv"
)

// TestDemo runs `mysecure demo` (what `make demo` runs): it exits 0,
// prints one line per step of the story in order, and leaves nothing
// behind: no sandbox directory, no mount, no demo user or group.
func TestDemo(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump", "useradd", "groupadd", "userdel", "groupdel")
	if _, err := user.Lookup("mysecure-demo"); err == nil {
		t.Fatal("a user mysecure-demo exists before the demo: remove it (userdel mysecure-demo)")
	}
	parent := t.TempDir()
	// The server's user and the group member must reach the sandbox.
	os.Chmod(parent, 0o755)
	os.Chmod(filepath.Dir(parent), 0o755)
	var out bytes.Buffer
	cmd := exec.Command(binary, "demo", "--dir", parent)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil {
		t.Fatalf("mysecure demo: %v\n%s", err, out.String())
	}
	text := out.String()
	last := -1
	for i, step := range demo.Steps {
		at := strings.Index(text, "] "+step+": ")
		if at < 0 {
			t.Fatalf("step %q missing:\n%s", step, text)
		}
		if at < last {
			t.Fatalf("step %q out of order:\n%s", step, text)
		}
		last = at
		if !strings.Contains(text, "["+pad(i+1)+"/"+pad(len(demo.Steps))+"] "+step+": ") {
			t.Fatalf("step %q not numbered %d:\n%s", step, i+1, text)
		}
	}
	if !strings.HasSuffix(text, "demo complete\n") {
		t.Fatalf("no closing line:\n%s", text)
	}
	for _, want := range []string{"Permission denied", "none holds a card number", "CHECKSUM TABLE equal", "policy check exits 15", "rule missing: ALLOW @mysqlbackup"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the demo does not say %q:\n%s", want, text)
		}
	}

	// Nothing left behind.
	if ents, err := os.ReadDir(parent); err != nil || len(ents) != 0 {
		t.Fatalf("the demo left %v in %s (%v)", ents, parent, err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), parent) {
		t.Fatalf("a mount under %s is left:\n%s", parent, b)
	}
	if _, err := user.Lookup("mysecure-demo"); err == nil {
		t.Fatal("the demo user is left")
	}
	if _, err := user.LookupGroup("mysecure-demo"); err == nil {
		t.Fatal("the demo group is left")
	}
	if _, err := os.Stat(filepath.Join(parent, "..", "mysecure-demo")); err == nil {
		t.Fatal("unexpected sandbox next to the parent")
	}
}

func pad(n int) string {
	s := "  " + itoa(n)
	return s[len(s)-2:]
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
