package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// The paths a DBA's first day writes with no flags and no MYSECURE_*
// settings: the volume, the control socket, the logs, the config file
// (with the schedules), harden's state and guard configuration, and the
// cron.d file.
var hostDefaultPaths = append(append([]string(nil), defaultPaths...), "/etc/mysecure", "/etc/cron.d/mysecure")

// newDefaultsMount makes and mounts a volume on the built-in default
// paths, with init run under root's umask 077, and removes them all again
// at the end. It refuses to run where any of them exists: it will not
// touch a real installation.
func newDefaultsMount(t *testing.T) *mountEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	for _, p := range hostDefaultPaths {
		if _, err := os.Lstat(p); err == nil {
			testenv.Missing(t, "free default paths", p+" exists: this test creates and removes the default paths, and will not touch a real installation")
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	pass, salt := filepath.Join(dir, "pass"), filepath.Join(dir, "salt")
	os.WriteFile(pass, []byte("default paths passphrase\n"), 0o600)
	os.WriteFile(salt, []byte("default paths salt\n"), 0o600)
	m := &mountEnv{
		env: &env{t: t, dir: dir, store: "/var/lib/mysecure/storage", state: "/var/lib/mysecure/state",
			creds: []string{"--passphrase-file", pass, "--salt-file", salt}},
		mnt: "/var/lib/mysecure/encrypted", socket: "/run/mysecure/control.sock",
		audit: "/var/log/mysecure/access.log", log: "/var/log/mysecure/mysecure.log",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSECURE_") && !strings.HasPrefix(kv, "HOME=") {
			m.base = append(m.base, kv)
		}
	}
	m.base = append(m.base, "HOME="+dir)
	t.Cleanup(func() {
		m.unmount()
		for _, p := range hostDefaultPaths {
			os.RemoveAll(p)
		}
	})
	old := syscall.Umask(0o077)
	m.ms(0, append([]string{"init", "--kdf-memory", "8", "--kdf-time", "1"}, m.creds()...)...)
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	syscall.Umask(old)
	return m
}

// TestHostPathOnDefaults is issue 15's "done when": the path a DBA walks
// on a Debian host, on mysecure's built-in default paths, with a server
// laid out like the host's (R/usr/sbin/mariadbd, R/var/lib/mysql, an
// init-script-like mysqld_safe running the server as mysql with an error
// log): the volume, the datadir into @mysql, logical and physical backups
// with stored credentials and a restore with a restore user, a nightly
// job handed to cron and run as cron runs it, harden, a physical backup of
// the hardened server, a root password reset (and one the rules make
// fail, which names the denial), a reboot (umount, mount), and undo.
// The server binary is a copy inside the test's root: the machine's own
// /usr/sbin/mariadbd is never replaced (other tests run it).
func TestHostPathOnDefaults(t *testing.T) {
	testenv.RequireCommands(t, "mysqld_safe", "mariadb-admin", "mariadb-backup", "mbstream", "mariadb-dump")
	m := newDefaultsMount(t)
	h := newHardenEnvOn(t, m)
	// harden's state and guard configuration on their defaults too.
	h.state, h.guardCfg = "/etc/mysecure/harden-mysqld.json", "/etc/mysecure/mysqld-guard.json"
	h.flags = []string{"--binary", h.bin, "--datadir", h.datadir,
		"--unit-dirs", filepath.Join(h.root, "lib", "systemd", "system"), "--dropin-dir", filepath.Join(h.root, "etc", "systemd", "system"),
		"--cnf-dir", filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dd := strings.TrimPrefix(h.datadir, "/")

	// 1. The datadir into @mysql, the server allowed on it, started the
	// way Debian's init script does.
	h.ms(0, append([]string{"encrypt", "@mysql", h.datadir}, h.creds()...)...)
	serverRule := "ALLOW @mysql " + dd + "/* " + h.bin + " --user=mysql"
	if out := h.ms(0, append([]string{"acl", "add", serverRule}, h.creds()...)...); strings.Contains(out, "cannot reach") {
		t.Fatalf("acl add warns on the defaults:\n%s", out)
	}
	s := h.startSafe(t)
	if ok, c := s.parentIsSafe(); !ok {
		t.Fatalf("the server's parent is not mysqld_safe: %s", c)
	}
	// Made at run time: the scans below would find constants in the test binary.
	bkPw, rsPw, newPw := "Host-Bk-"+randHex(6), "Host-Rs-"+randHex(6), `H0st'Pw\`+randHex(6)
	if out, err := s.client().Client(ctx, "SET sql_log_bin=0; CREATE USER 'bk'@'localhost' IDENTIFIED BY '"+bkPw+"'; GRANT ALL ON *.* TO 'bk'@'localhost';"+
		"CREATE USER 'restore'@'localhost' IDENTIFIED BY '"+rsPw+"'; GRANT ALL ON `shop\\_copy`.* TO 'restore'@'localhost'; GRANT SET USER, SUPER ON *.* TO 'restore'@'localhost';"+
		"INSERT INTO shop.t VALUES ('on-the-host');"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if b, err := exec.Command("cat", filepath.Join(h.datadir, "ibdata1")).CombinedOutput(); err == nil {
		t.Fatalf("cat of the encrypted datadir was allowed (%d bytes)", len(b))
	}
	if out := h.ms(0, "status"); strings.Contains(out, "cannot reach") || !strings.Contains(out, "/var/lib/mysecure/encrypted") {
		t.Fatalf("status on the defaults:\n%s", out)
	}

	// 2. Backups with stored credentials, through the daemon.
	setCreds := func(name, user, pw string) {
		f := filepath.Join(h.dir, "pw-"+name)
		os.WriteFile(f, []byte(pw), 0o600)
		defer os.Remove(f)
		h.ms(0, "backup", "credentials", "set", "--name", name, "--user", user, "--mysql-socket", s.sock, "--password-file", f)
	}
	setCreds("default", "bk", bkPw)
	setCreds("restore", "restore", rsPw)
	h.ms(0, "backup", "--databases", "shop")
	// A physical backup is denied until the backup tool has a rule: the
	// error names the denial and the rule, which the DBA adds.
	tool, _ := exec.LookPath("mariadb-backup")
	tool, _ = filepath.EvalSymlinks(tool)
	toolRule := "ALLOW @mysql " + dd + "/* " + tool + " --user=0"
	if out := h.ms(10, "backup", "--type", "physical"); !strings.Contains(out, "denied: "+tool+" opening "+filepath.Join(h.mnt, "mysql", dd)) || !strings.Contains(out, "mysecure acl add '"+toolRule+"'") {
		t.Fatalf("physical backup without a rule for the tool:\n%s", out)
	}
	h.aclAdd(toolRule)
	h.ms(0, "backup", "--type", "physical")
	ids := h.catalogIDs(t)
	if len(ids) != 2 {
		t.Fatalf("catalog after two backups: %v", ids)
	}
	h.ms(0, "backup", "verify", "--all")
	h.ms(0, "restore", ids[0], "--rename-to", "shop_copy", "--credentials", "restore")
	if out, err := s.client().Client(ctx, "SELECT v FROM shop_copy.t ORDER BY v"); err != nil || !strings.Contains(out, "on-the-host") {
		t.Fatalf("restored copy: %q %v", out, err)
	}

	// 3. A nightly job: the daemon sees the config file that appeared
	// after it started; cron gets it with a key file, and its line runs
	// as cron would run it (no daemon needed for the unlock, defaults).
	h.ms(0, append([]string{"key", "add", "--type", "keyfile", "--create-keyfile", "/etc/mysecure/boot.key"}, h.creds()...)...)
	h.ms(0, "schedule", "add", "nightly", "--schedule", "30 2 * * *", "--databases", "shop", "--keep-daily", "7")
	if out := h.ms(0, "schedule", "list"); !strings.Contains(out, "nightly") {
		t.Fatalf("schedule list after the first add:\n%s", out)
	}
	waitFor(t, "the daemon to load the new config file", 30*time.Second, func() bool {
		out, _ := h.cmd("schedule", "status").CombinedOutput()
		return strings.Contains(string(out), "nightly")
	})
	h.ms(0, "schedule", "install", "--cron", "--keyfile", "/etc/mysecure/boot.key")
	cron, err := os.ReadFile("/etc/cron.d/mysecure")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(cron), "\n") {
		if strings.Contains(l, "--job nightly") {
			line = l
		}
	}
	f := strings.Fields(line)
	if len(f) < 8 || strings.Join(f[:5], " ") != "30 2 * * *" || f[5] != "root" {
		t.Fatalf("cron line %q in\n%s", line, cron)
	}
	if f[6] != binaryPath(t) {
		t.Fatalf("cron line runs %s, not this mysecure (%s)", f[6], binaryPath(t))
	}
	cmdline := strings.Join(f[6:], " ")
	if i := strings.Index(cmdline, " >>"); i > 0 {
		cmdline = cmdline[:i]
	}
	// cron's environment: no MYSECURE_* settings, a short PATH.
	c := exec.Command("/bin/sh", "-c", cmdline)
	c.Env = append(m.base, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if out, err := c.CombinedOutput(); err != nil || !strings.Contains(string(out), "job nightly: backup") {
		t.Fatalf("running the cron command %q: %v\n%s", cmdline, err, out)
	}
	if n := len(h.catalogIDs(t)); n != 3 {
		t.Fatalf("catalog after the cron run: %d backups, want 3", n)
	}

	// 4. harden: the server's plain rule goes first (harden refuses to
	// leave a way around the guard), the backup tool's rule stays.
	shutdown := func() {
		t.Helper()
		pid := s.pid()
		if out, err := exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").CombinedOutput(); err != nil {
			t.Fatalf("shutdown: %v %s", err, out)
		}
		waitFor(t, "the server to stop", 60*time.Second, func() bool { return pid == 0 || syscall.Kill(pid, 0) != nil })
	}
	shutdown()
	// The dry run shows the refusal the real run would hit (once), naming
	// the rule as 'acl list' shows it (the user as a uid).
	out := h.harden(2, "--dry-run")
	listed := regexp.MustCompile(`ALLOW @mysql ` + regexp.QuoteMeta(dd) + `/\* ` + regexp.QuoteMeta(h.bin) + ` --user=\d+`).FindString(out)
	if listed == "" || !strings.Contains(out, "\nrefused: rules already open @mysql") || strings.Contains(out, "refused: refused") {
		t.Fatalf("dry run with the plain server's rule: %s", out)
	}
	h.ms(0, append([]string{"acl", "del", listed}, h.creds()...)...)
	h.harden(0)
	rules := h.ms(0, "acl", "list")
	if !strings.Contains(rules, toolRule) {
		t.Fatalf("harden dropped the backup tool's rule:\n%s", rules)
	}
	guardRule := regexp.MustCompile(`ALLOW @mysql ` + regexp.QuoteMeta(dd) + `/\* ` + regexp.QuoteMeta(filepath.Join(h.mnt, "protected")) + `\S+( --user=\S+)?`).FindString(rules)
	if guardRule == "" {
		t.Fatalf("no rule for the server binary in the mount:\n%s", rules)
	}
	s = h.startSafe(t)
	if err := login(s.client(), "app", "App-Pw-1"); err != nil {
		t.Fatalf("the hardened server: %v", err)
	}
	h.ms(0, "backup", "--type", "physical")

	// 5. A root password reset on the defaults (the init FIFO under /run).
	pw := filepath.Join(h.dir, "newpw")
	os.WriteFile(pw, []byte(newPw), 0o600)
	reset := func(want int) string {
		return h.ms(want, append([]string{"harden", "reset-root-password", "--user", "app@127.0.0.1", "--password-file", pw}, h.creds()...)...)
	}
	if out := reset(0); !strings.Contains(out, "password of app@127.0.0.1 set") || !strings.Contains(out, "server started again (mysqld_safe") {
		t.Fatalf("reset: %s", out)
	}
	if err := login(s.client(), "app", newPw); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	// A reset whose restart the rules deny names the denial and the rule.
	h.ms(0, append([]string{"acl", "del", guardRule}, h.creds()...)...)
	out = reset(1)
	t.Logf("reset with the server's rule removed:\n%s", out)
	if !strings.Contains(out, "denied: "+filepath.Join(h.mnt, "protected")) || !strings.Contains(out, "opening "+filepath.Join(h.mnt, "mysql", dd)) || !strings.Contains(out, "mysecure acl add 'ALLOW @mysql "+dd+"/* ") {
		t.Fatalf("a reset the rules break does not name the denial:\n%s", out)
	}
	h.aclAdd(guardRule)
	s = h.startSafe(t)

	// 6. A reboot: the server stops, the volume is unmounted and mounted
	// again, the hardened server starts under mysqld_safe with its data.
	shutdown()
	h.ms(0, "umount")
	h.ms(0, append([]string{"mount"}, h.creds()...)...)
	s = h.startSafe(t)
	if out, err := s.client().Client(ctx, "SELECT GROUP_CONCAT(v ORDER BY v) FROM shop.t"); err != nil || !strings.Contains(out, "before-harden,on-the-host") {
		t.Fatalf("data after the reboot: %q %v", out, err)
	}

	// 7. undo: the original binary starts on the datadir, which stays in
	// @mysql; the backup tool's rule (the DBA's) stays.
	shutdown()
	if out := h.harden(0, "--undo"); !strings.Contains(out, "stays in @mysql") {
		t.Fatalf("undo: %s", out)
	}
	s = h.startSafe(t)
	if err := login(s.client(), "app", newPw); err != nil {
		t.Fatalf("the server after undo: %v", err)
	}
	if rules := h.ms(0, "acl", "list"); !strings.Contains(rules, toolRule) {
		t.Fatalf("undo removed the DBA's rule for the backup tool:\n%s", rules)
	}
	h.ms(0, "backup", "--type", "physical")
	shutdown()
	os.Remove(pw)

	// Nothing secret in the store, the logs or the temp dirs.
	scanStore(t, "/var/lib/mysecure/storage", bkPw, rsPw, "on-the-host")
	for _, d := range []string{"/var/log/mysecure", "/etc/mysecure", h.dir, os.TempDir()} {
		scanFiles(t, d, bkPw, rsPw, newPw)
	}
}
