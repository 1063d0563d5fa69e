package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// TestPolicyDatadir applies mysql-datadir to a real MariaDB datadir on a
// private path: the datadir moves into @mysql, the rule is added, the
// server runs as mysql from the mount; a second apply changes nothing;
// check passes, and fails naming the rule once it is deleted.
func TestPolicyDatadir(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb")
	m := newMount(t)
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	datadir := filepath.Join(m.dir, "srv", "mysql")
	if err := os.MkdirAll(filepath.Dir(datadir), 0o755); err != nil {
		t.Fatal(err)
	}
	o := sandbox.Options{Dir: filepath.Join(m.dir, "run"), DataDir: datadir}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sandbox.Init(ctx, o); err != nil {
		t.Fatal(err)
	}
	dropins := filepath.Join(m.dir, "etc", "systemd", "system")
	sets := []string{"--set", "datadir=" + datadir, "--set", "mysqld=" + bin, "--set", "dropin-dir=" + dropins}

	dry := m.ms(0, append([]string{"policy", "apply", "mysql-datadir", "--dry-run"}, sets...)...)
	for _, want := range []string{"encrypt " + datadir + " into @mysql", "dry run: 3 step(s) would change", "write the systemd drop-in " + dropins} {
		if !strings.Contains(dry, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if fi, err := os.Lstat(datadir); err != nil || !fi.IsDir() {
		t.Fatalf("the dry run changed the datadir: %v", err)
	}

	out := m.ms(0, append(append([]string{"policy", "apply", "mysql-datadir"}, sets...), m.creds()...)...)
	rule := "ALLOW @mysql " + strings.TrimPrefix(datadir, "/") + "/* " + bin + " --user=mysql"
	for _, want := range []string{"plan for mysql-datadir", "done:      encrypt " + datadir, "done:      add rule: " + rule, "3 step(s) changed, 1 in place already"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply output lacks %q:\n%s", want, out)
		}
	}
	// The server waits for the mount at boot (issue 14 item 4).
	if b, err := os.ReadFile(filepath.Join(dropins, "mariadb.service.d", "mysecure-mount.conf")); err != nil || !strings.Contains(string(b), "BindsTo=mysecure.service") {
		t.Fatalf("boot-order drop-in: %q %v", b, err)
	}
	target, err := os.Readlink(datadir)
	if err != nil || target != filepath.Join(m.mnt, "mysql", datadir) {
		t.Fatalf("datadir not a symlink into @mysql: %q %v", target, err)
	}
	if acl := m.ms(0, "acl", "list"); !strings.Contains(acl, strings.TrimSuffix(rule, "mysql")) {
		t.Fatalf("rule not in force:\n%s", acl)
	}

	// The server runs as mysql with its datadir on the mount.
	s := startSandbox(t, o)
	if got, err := s.Client(ctx, "CREATE DATABASE pol; CREATE TABLE pol.t (v INT); INSERT INTO pol.t VALUES (42); SELECT v FROM pol.t;"); err != nil || !strings.Contains(got, "42") {
		t.Fatalf("server on the mount: %v %s\n%s", err, got, s.ErrorLog())
	}
	if u := procUser(t, s.Pid()); u != "mysql" {
		t.Fatalf("server runs as %q, want mysql", u)
	}
	// Others are denied the plaintext.
	if b, err := read("cat", filepath.Join(datadir, "pol", "db.opt")); err == nil {
		t.Fatalf("cat read the datadir: %s", b)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	again := m.ms(0, append([]string{"policy", "apply", "mysql-datadir"}, sets...)...)
	if !strings.Contains(again, "nothing to change") {
		t.Fatalf("second apply:\n%s", again)
	}
	// check uses the values of the apply.
	chk := m.ms(0, "policy", "check")
	if strings.Contains(chk, "drift") || !strings.Contains(chk, "mysql-datadir: ok:    add rule: "+rule) {
		t.Fatalf("check after apply:\n%s", chk)
	}
	js := m.ms(0, "policy", "check", "mysql-datadir", "--json")
	var reports []struct {
		Bundle string `json:"bundle"`
		OK     bool   `json:"ok"`
	}
	mustJSON(t, js, &reports)
	if len(reports) != 1 || !reports[0].OK {
		t.Fatalf("check --json: %s", js)
	}

	m.ms(0, append([]string{"acl", "del", rule}, m.creds()...)...)
	drift := m.ms(15, "policy", "check")
	if !strings.Contains(drift, "mysql-datadir: drift: rule missing: "+rule) || !strings.Contains(drift, "mysecure: error: drift: 1 step(s)") {
		t.Fatalf("check after the rule was deleted:\n%s", drift)
	}
	// apply puts it back.
	fix := m.ms(0, append([]string{"policy", "apply", "mysql-datadir"}, m.creds()...)...)
	if !strings.Contains(fix, "1 step(s) changed") {
		t.Fatalf("apply after drift:\n%s", fix)
	}
	m.ms(0, "policy", "check", "mysql-datadir")
}

func procUser(t *testing.T, pid int) string {
	t.Helper()
	out, err := exec.Command("ps", "-o", "user=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestPolicyRollback: a custom bundle whose second move fails (its path
// does not exist) rolls back the first; a bundle with a typo is a usage
// error naming the line.
func TestPolicyRollback(t *testing.T) {
	m := newMount(t)
	a := filepath.Join(m.dir, "data-a")
	os.MkdirAll(a, 0o755)
	os.WriteFile(filepath.Join(a, "f"), []byte("secret-a"), 0o644)
	missing := filepath.Join(m.dir, "no-such-dir")
	cfg := filepath.Join(m.dir, "mysecure.yaml")
	bundle := filepath.Join(m.dir, "two.yaml")
	os.WriteFile(bundle, []byte(`name: two
params:
  a: {default: `+a+`}
  b: {default: `+missing+`}
categories: [protected]
encrypt:
  - category: protected
    path: ${a}
  - category: protected
    path: ${b}
schedules:
  - name: two-daily
    schedule: "@daily"
`), 0o644)
	m.vars = append(m.vars, "MYSECURE_CONFIG="+cfg)
	os.WriteFile(cfg, []byte("# mine\nschedules: []\n"), 0o600)
	out := m.ms(6, append([]string{"policy", "apply", bundle}, m.creds()...)...)
	for _, want := range []string{"done:      encrypt " + a, "failed:    encrypt " + missing, "undone:    encrypt " + a, "rolled back 1 step(s)", "the host is as it was before the apply"} {
		if !strings.Contains(out, want) {
			t.Fatalf("failed apply lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Lstat(a); err != nil || !fi.IsDir() {
		t.Fatalf("%s not moved back: %v", a, err)
	}
	if b, err := os.ReadFile(filepath.Join(a, "f")); err != nil || string(b) != "secret-a" {
		t.Fatalf("content after rollback: %q %v", b, err)
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), "two-daily") {
		t.Fatalf("schedule written by a failed apply:\n%s", b)
	}

	// Fixed, it applies, and the schedule lands in the config file.
	os.MkdirAll(missing, 0o755)
	m.ms(0, append([]string{"policy", "apply", bundle}, m.creds()...)...)
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "name: two-daily") || !strings.Contains(string(b), "# mine") {
		t.Fatalf("config file after apply:\n%s", b)
	}
	m.ms(0, "policy", "check", bundle)
	m.ms(0, "schedule", "list")

	typo := filepath.Join(m.dir, "typo.yaml")
	os.WriteFile(typo, []byte("name: typo\nparams:\n  d: {default: /x}\nencrypt:\n  - category: mysql\n    paht: ${d}\n"), 0o644)
	bad := m.ms(2, "policy", "apply", typo, "--dry-run")
	if !strings.Contains(bad, "mysecure: error: ") || !strings.Contains(bad, "line 6: field paht not found") || !strings.Contains(bad, "mysecure: hint: docs/policies.md") {
		t.Fatalf("typo:\n%s", bad)
	}
	if got := m.ms(2, "policy", "apply", "mysql-datadir", "--set", "datadri=/x", "--dry-run"); !strings.Contains(got, "has no parameter datadri") {
		t.Fatalf("unknown --set:\n%s", got)
	}
	if got := m.ms(2, "policy", "show", "no-such"); !strings.Contains(got, "policy list") {
		t.Fatalf("unknown bundle:\n%s", got)
	}
}

// TestPolicyHost applies mysql-host to a private copy of the server laid
// out like a host (newHardenEnv): the datadir moves into @mysql, the
// guard goes in front of the server by the harden procedure, the backup
// rules and schedules are added. A failure inside the harden procedure
// rolls everything back; the applied host serves through the guard,
// which drops --skip-grant-tables; check is clean, then reports a
// deleted rule (exit 15), and apply puts a deleted rule of the guard back.
func TestPolicyHost(t *testing.T) {
	h := newHardenEnv(t)
	cfg := filepath.Join(h.dir, "mysecure.yaml")
	os.WriteFile(cfg, []byte("schedules: []\n"), 0o600)
	h.vars = append(h.vars, "MYSECURE_CONFIG="+cfg)
	cnfDir := filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d")
	wrapper := h.bin + "-guard"
	sets := []string{"--set", "mysqld=" + h.bin, "--set", "datadir=" + h.datadir, "--set", "harden-state=" + h.state,
		"--set", "guard-config=" + h.guardCfg, "--set", "cnf-dir=" + cnfDir,
		"--set", "unit-dirs=" + filepath.Join(h.root, "lib", "systemd", "system"), "--set", "dropin-dir=" + filepath.Join(h.root, "etc", "systemd", "system")}
	apply := func(want int) string {
		t.Helper()
		return h.ms(want, append(append([]string{"policy", "apply", "mysql-host"}, sets...), h.creds()...)...)
	}

	// A file harden did not write where its option file goes: the
	// procedure fails half way, undoes itself, and the plan rolls back the
	// datadir's move.
	foreign := filepath.Join(cnfDir, "99-mysecure-guard.cnf")
	os.WriteFile(foreign, []byte("[mysqld_safe]\n# the admin's own\n"), 0o644)
	out := apply(6)
	for _, want := range []string{"harden: done: install guard", "harden: reverted: install guard", "failed:    the skip-grant-tables guard is in front of " + h.bin,
		"was not written by mysecure", "undone:    encrypt " + h.datadir + " into @mysql", "the host is as it was before the apply"} {
		if !strings.Contains(out, want) {
			t.Fatalf("failed apply lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{h.bin, h.datadir} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			t.Fatalf("%s after the rollback: %v %v", p, fi.Mode(), err)
		}
	}
	for _, p := range []string{wrapper, h.state, h.guardCfg} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left by the rollback: %v", p, err)
		}
	}
	if rules := h.ms(0, "acl", "list"); strings.Contains(rules, "ALLOW") {
		t.Fatalf("rules left by the rollback:\n%s", rules)
	}
	os.Remove(foreign)

	out = apply(0)
	for _, want := range []string{"done:      encrypt " + h.datadir + " into @mysql", "harden: done: encrypt binary", "done:      the skip-grant-tables guard is in front of " + h.bin,
		"done:      add rule: ALLOW @mysqlbackup *.cnf", "applied mysql-host"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(h.state); !strings.Contains(string(b), `"encrypt_datadir": false`) {
		t.Fatalf("harden state:\n%s", b)
	}
	// The server runs through the guard from the encrypted datadir; the
	// guard drops --skip-grant-tables.
	s, err := h.start(wrapper, nil, "--skip-grant-tables")
	if err != nil {
		t.Fatalf("start through the guard: %v", err)
	}
	if err := login(s, "app", "App-Pw-1"); err != nil {
		t.Fatalf("app login: %v", err)
	}
	if err := login(s, "intruder", ""); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("--skip-grant-tables reached the server: %v", err)
	}
	if b, err := read("cat", filepath.Join(h.datadir, "shop", "db.opt")); err == nil {
		t.Fatalf("cat read the datadir: %s", b)
	}
	s.Stop()

	chk := h.ms(0, "policy", "check")
	if strings.Contains(chk, "drift") || !strings.Contains(chk, "mysql-host: ok:    the skip-grant-tables guard is in front of "+h.bin) {
		t.Fatalf("check after apply:\n%s", chk)
	}
	dumpRule := "ALLOW @mysqlbackup *.cnf /usr/bin/mariadb-dump"
	if !strings.Contains(chk, dumpRule) {
		t.Logf("the dump rule is not %q here:\n%s", dumpRule, chk)
		testenv.Missing(t, "/usr/bin/mariadb-dump", "the policy's dump rule names the dump tool there")
	}
	h.ms(0, append([]string{"acl", "del", dumpRule}, h.creds()...)...)
	drift := h.ms(15, "policy", "check")
	if !strings.Contains(drift, "mysql-host: drift: rule missing: "+dumpRule) || !strings.Contains(drift, "mysecure: error: drift: 1 step(s) of mysql-host") {
		t.Fatalf("check after the rule was deleted:\n%s", drift)
	}
	// A deleted rule of the guard: drift, and apply adds it back.
	guardRule := "ALLOW @mysql " + strings.TrimPrefix(h.datadir, "/") + "/* " + filepath.Join(h.mnt, "protected", h.bin)
	h.ms(0, append([]string{"acl", "del", guardRule}, h.creds()...)...)
	drift = h.ms(15, "policy", "check")
	if !strings.Contains(drift, "mysql-host: drift: rule missing: "+guardRule+" (the guard's)") {
		t.Fatalf("check after the guard's rule was deleted:\n%s", drift)
	}
	if fix := apply(0); !strings.Contains(fix, "2 step(s) changed") {
		t.Fatalf("apply after drift:\n%s", fix)
	}
	h.ms(0, "policy", "check")
	s, err = h.start(wrapper, nil)
	if err != nil {
		t.Fatalf("start through the guard after the repair: %v", err)
	}
	s.Stop()
}
