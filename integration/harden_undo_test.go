package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHardenUndoDatadirInMount: issue 15 item 3. The datadir was in
// @mysql before hardening (with a rule for the plain binary, which harden
// asks to remove): --undo leaves it there and gives the original binary
// the rule it needs, so the server starts; an undo while the server runs
// changes nothing.
func TestHardenUndoDatadirInMount(t *testing.T) {
	h := newHardenEnv(t)
	h.ms(0, append([]string{"encrypt", "@mysql", h.datadir}, h.creds()...)...)
	plainRule := "ALLOW @mysql " + strings.TrimPrefix(h.datadir, "/") + "/* " + h.bin
	h.aclAdd(plainRule)
	s, err := h.start(h.bin, nil)
	if err != nil {
		t.Fatalf("the plain server on the encrypted datadir: %v", err)
	}
	s.Stop()
	h.harden(2) // the plain binary's rule would open the datadir around the guard
	h.ms(0, append([]string{"acl", "del", plainRule}, h.creds()...)...)
	h.harden(0)
	if b, _ := os.ReadFile(h.state); !strings.Contains(string(b), `"encrypt_datadir": false`) {
		t.Fatalf("harden encrypted the datadir again:\n%s", b)
	}

	// An undo while the server runs: refused before anything changed.
	s, err = h.start(h.bin+"-guard", nil)
	if err != nil {
		t.Fatalf("start through the guard: %v", err)
	}
	rulesBefore := h.ms(0, "acl", "list")
	if out := h.harden(6, "--undo"); !strings.Contains(out, "the server is running") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("undo while running: %s", out)
	}
	if rules := h.ms(0, "acl", "list"); rules != rulesBefore {
		t.Fatalf("the refused undo changed the rules:\n%s\nwas:\n%s", rules, rulesBefore)
	}
	if _, err := os.Stat(filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d", "99-mysecure-guard.cnf")); err != nil {
		t.Fatalf("the refused undo removed the option file: %v", err)
	}
	if err := login(s, "app", "App-Pw-1"); err != nil {
		t.Fatalf("the hardened server after the refused undo: %v", err)
	}
	s.Stop()

	out := h.harden(0, "--undo")
	if !strings.Contains(out, "stays in @mysql") || !strings.Contains(out, h.bin) {
		t.Fatalf("undo: %s", out)
	}
	if fi, err := os.Lstat(h.datadir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the datadir was moved out of @mysql: %v", err)
	}
	if rules := h.ms(0, "acl", "list"); strings.Contains(rules, "@protected") || !strings.Contains(rules, strings.TrimPrefix(h.datadir, "/")+"/* "+h.bin) {
		t.Fatalf("rules after --undo:\n%s", rules)
	}
	s, err = h.start(h.bin, nil)
	if err != nil {
		t.Fatalf("the original binary does not start after --undo: %v", err)
	}
	if out, err := s.Client(context.Background(), "SELECT v FROM shop.t"); err != nil || !strings.Contains(out, "before-harden") {
		t.Fatalf("data after --undo: %q %v", out, err)
	}
	// A copy of the binary still cannot read the datadir.
	s.Stop()
	if s, err := h.start(filepath.Join(h.root, "copy", "mariadbd"), nil); err == nil {
		s.Stop()
		t.Fatal("a copy of the server binary started on the encrypted datadir after --undo")
	}
}
