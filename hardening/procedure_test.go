package hardening

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStepNamesFrozen: the step names are in the state files of hosts
// hardened by earlier versions; --undo must keep reading them. A state
// written the way 0.x wrote it (literal names) loads and answers Did for
// every typed step.
func TestStepNamesFrozen(t *testing.T) {
	frozen := map[StepName]string{
		StepInstallGuard:       "install guard",
		StepEncryptBinary:      "encrypt binary",
		StepEncryptGuardConfig: "encrypt guard config",
		StepEncryptDataDir:     "encrypt datadir",
		StepRule(0):            "rule 1",
		StepRule(2):            "rule 3",
		StepOptionFile:         "option file",
		StepDropIns:            "systemd drop-ins",
		StepPlainServerRule:    "plain server rule",
	}
	for step, want := range frozen {
		if string(step) != want {
			t.Errorf("step %q renamed from %q: existing state files would not undo", step, want)
		}
	}
	path := filepath.Join(t.TempDir(), "harden-mysqld.json")
	state := `{"binary": "/usr/sbin/mariadbd", "rules": ["a", "b", "c"],
 "done": ["install guard", "encrypt binary", "encrypt guard config", "encrypt datadir", "rule 1", "rule 2", "rule 3", "option file", "systemd drop-ins"]}`
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []StepName{StepInstallGuard, StepEncryptBinary, StepEncryptGuardConfig, StepEncryptDataDir, StepRule(0), StepRule(1), StepRule(2), StepOptionFile, StepDropIns} {
		if !p.Did(s) {
			t.Errorf("the state does not show %q done", s)
		}
	}
	if p.Did(StepPlainServerRule) {
		t.Error("the state shows a step it does not record")
	}
	if err := p.Unmark(StepRule(1)); err != nil || p.Did(StepRule(1)) || len(p.Done) != 8 {
		t.Fatalf("unmark: %v %v", err, p.Done)
	}
	q, err := LoadState(path)
	if err != nil || q.Did(StepRule(1)) || !q.Did(StepRule(2)) {
		t.Fatalf("saved state: %v %v", err, q.Done)
	}
}
