package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue #13 items 3 and 4, end to end with the real daemon: an older
// rules.json or mysecure.conf (valid MAC) put back into the store is
// refused at mount and by key commands; the master credential accepts it
// on purpose; a key file can neither accept a rollback nor manage slots.

// addKeyFile adds a key file slot with the master credential.
func (m *mountEnv) addKeyFile() string {
	m.t.Helper()
	kf := filepath.Join(m.dir, "boot.key")
	m.ms(0, append([]string{"key", "add", "--type", "keyfile", "--create-keyfile", kf}, m.creds()...)...)
	return kf
}

func saveCopy(t *testing.T, src string) []byte {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putBack(t *testing.T, dst string, b []byte) {
	t.Helper()
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestRollbackRules(t *testing.T) {
	m := newMount(t)
	kf := m.addKeyFile()
	data := filepath.Join(m.mnt, "mysql", "secret.txt")
	m.ms(0, append([]string{"mode", "set", "admin"}, m.creds()...)...)
	if err := os.WriteFile(data, []byte("MARKER rollback\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.ms(0, "mode", "set", "enforcing")
	reader := filepath.Join(m.dir, "reader")
	copyFile(t, "/usr/bin/cat", reader, 0o755)

	rules := filepath.Join(m.store, "rules.json")
	m.aclAdd("ALLOW @mysql * " + reader) // rules generation 1
	if out, err := read(reader, data); err != nil || !strings.Contains(out, "MARKER") {
		t.Fatalf("allowed reader: %q %v", out, err)
	}
	old := saveCopy(t, rules)
	m.ms(0, append([]string{"acl", "del", "1"}, m.creds()...)...) // generation 2
	if _, err := read(reader, data); err == nil {
		t.Fatal("reader allowed after its rule was deleted")
	}

	// Put back while mounted, then SIGHUP: the running daemon refuses
	// the older file and denies everything, saying why.
	putBack(t, rules, old)
	var st map[string]any
	json.Unmarshal([]byte(m.ms(0, "status", "--json")), &st)
	pid := int(st["pid"].(float64))
	if err := exec.Command("kill", "-HUP", strconv.Itoa(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		json.Unmarshal([]byte(m.ms(0, "status", "--json")), &st)
		if s, _ := st["deny_all"].(string); strings.Contains(s, "rollback") {
			mustContain(t, s, rules, "generation 1", "generation 2")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP with an older rules.json: status %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := read(reader, data); err == nil {
		t.Fatal("the deleted rule is in force again after SIGHUP")
	}

	// Remount: refused with one clear line and a hint; nothing mounted.
	m.ms(0, "umount")
	out := m.ms(4, append([]string{"mount"}, m.creds()...)...)
	mustContain(t, out, "mysecure: error: rollback: "+rules+" has generation 1, older than generation 2 last seen",
		"mysecure: hint: ", "key accept-rollback")
	if _, err := read(reader, data); err == nil {
		t.Fatal("the deleted rule is in force after a remount")
	}
	// A key file mounts, but not an older rule file either.
	m.ms(4, "mount", "--keyfile", kf)

	// Accepting: never with a key file; with the master credential yes.
	out = m.ms(2, "key", "accept-rollback", "--keyfile", kf)
	mustContain(t, out, "not a master credential")
	m.ms(4, "mount", "--keyfile", kf)
	out = m.ms(0, append([]string{"key", "accept-rollback"}, m.creds()...)...)
	mustContain(t, out, "rules.json", "generation 1", "last seen 2")
	m.ms(0, "mount", "--keyfile", kf)
	if out, err := read(reader, data); err != nil || !strings.Contains(out, "MARKER") {
		t.Fatalf("after accepting the older rules on purpose: %q %v", out, err)
	}
	// The next change counts on from the highest generation seen.
	m.aclAdd("DENY @mysql secret.txt " + reader)
	var rf struct {
		Generation uint64 `json:"generation"`
	}
	json.Unmarshal(saveCopy(t, rules), &rf)
	if rf.Generation != 2 {
		t.Fatalf("rules generation after accept and one change: %d, want 2", rf.Generation)
	}
}

func TestRollbackConfig(t *testing.T) {
	m := newMount(t) // mysecure.conf generation 1, seen by the mount
	conf := filepath.Join(m.store, "mysecure.conf")
	kf := m.addKeyFile() // generation 2
	old := saveCopy(t, conf)
	m.ms(0, append([]string{"key", "remove", "2"}, m.creds()...)...) // generation 3
	m.ms(3, "key", "verify", "--keyfile", kf)
	m.ms(0, "umount")

	// The older config revives the removed slot: refused by verify, key
	// operations and mount, with every credential.
	putBack(t, conf, old)
	want := "rollback: " + conf + " has generation 2, older than generation 3 last seen"
	out := m.ms(4, "key", "verify", "--keyfile", kf)
	mustContain(t, out, "mysecure: error: "+want, "mysecure: hint: ")
	if strings.Contains(out, "ok:") {
		t.Fatalf("verify said ok:\n%s", out)
	}
	mustContain(t, m.ms(4, append([]string{"key", "verify"}, m.creds()...)...), want)
	mustContain(t, m.ms(4, append([]string{"key", "remove", "2"}, m.creds()...)...), want)
	mustContain(t, m.ms(4, append([]string{"mount"}, m.creds()...)...), want)
	mustContain(t, m.ms(4, "mount", "--keyfile", kf), want)

	// The removed key file cannot accept its own revival.
	mustContain(t, m.ms(2, "key", "accept-rollback", "--keyfile", kf), "not a master credential")
	m.ms(4, "key", "verify", "--keyfile", kf)
	// The master credential can, on purpose.
	out = m.ms(0, append([]string{"key", "accept-rollback"}, m.creds()...)...)
	mustContain(t, out, "mysecure.conf", "generation 2", "last seen 3")
	m.ms(0, "key", "verify", "--keyfile", kf)
	m.ms(0, append([]string{"mount"}, m.creds()...)...)

	// The state is root-only and outside the store.
	st := filepath.Join(m.dir, "state")
	fi, err := os.Stat(st)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi, err)
	}
	files, _ := filepath.Glob(filepath.Join(st, "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files: %v", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode())
	}
}

// TestKeyFileCannotMintMaster is the attack run's item 3 against a live
// mount: with only the boot key file, add a passphrase slot, then use it
// to change the rules. Both steps are refused.
func TestKeyFileCannotMintMaster(t *testing.T) {
	m := newMount(t)
	kf := m.addKeyFile()
	np, ns := filepath.Join(m.dir, "evil-pass"), filepath.Join(m.dir, "evil-salt")
	os.WriteFile(np, []byte("minted\n"), 0o600)
	os.WriteFile(ns, []byte("minted salt\n"), 0o600)
	out := m.ms(2, "key", "add", "--type", "passphrase", "--keyfile", kf, "--new-passphrase-file", np, "--new-salt-file", ns)
	mustContain(t, out, "mysecure: error: a key file is not a master credential", "mysecure: hint: ")
	m.ms(2, "key", "change", "1", "--keyfile", kf, "--new-passphrase-file", np, "--new-salt-file", ns)
	m.ms(2, "key", "remove", "1", "--keyfile", kf)
	m.ms(3, "key", "verify", "--passphrase-file", np, "--salt-file", ns)
	m.ms(3, "acl", "add", "ALLOW @mysql * /usr/bin/cat", "--passphrase-file", np, "--salt-file", ns)
	m.ms(2, "acl", "add", "ALLOW @mysql * /usr/bin/cat", "--keyfile", kf)
	m.ms(2, "mode", "set", "admin", "--keyfile", kf)
	out = m.ms(0, "acl", "list")
	if strings.Contains(out, "/usr/bin/cat") {
		t.Fatalf("a rule was added:\n%s", out)
	}
}
