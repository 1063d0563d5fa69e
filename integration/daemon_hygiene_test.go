package integration

import (
	"context"
	"errors"
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

// inheritedFDs lists the descriptors of pid that survive an exec (those
// without close-on-exec), with what each points to.
func inheritedFDs(t *testing.T, pid int) map[int]string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		info, err := os.ReadFile(dir + "/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		var flags int64
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags, _ = strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			}
		}
		if flags&0o2000000 != 0 { // O_CLOEXEC
			continue
		}
		target, _ := os.Readlink(dir + "/fd/" + e.Name())
		out[n] = target
	}
	return out
}

// TestDaemonToolDescriptors: a backup tool the daemon runs gets its
// stdio and its credential pipe, nothing else: not the daemon's
// /dev/fuse (whoever holds it can answer FUSE requests in the daemon's
// place) and not a descriptor the shell that started `mysecure mount`
// left open.
func TestDaemonToolDescriptors(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
	realDump, err := execLookPath("mariadb-dump")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// The descriptor the launching shell leaks: fd 7 on a marker file.
	marker := filepath.Join(work, "shell-leaked-fd")
	leak, err := os.Create(marker)
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	// The dump tool: a wrapper that reports its pid and waits, so that
	// the test can list what the real tool will inherit, then execs it.
	wrapper := filepath.Join(work, "dump-wrapper")
	script := "#!/bin/sh\n" +
		"if [ \"$1\" = --version ]; then exec " + realDump + " \"$@\"; fi\n" +
		"echo $$ > " + work + "/pid.tmp && mv " + work + "/pid.tmp " + work + "/pid\n" +
		"while [ ! -e " + work + "/go ]; do sleep 0.05; done\n" +
		"exec " + realDump + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newMountFiles(t, []*os.File{nil, nil, nil, nil, leak}, "MYSECURE_DUMP_TOOL="+wrapper)

	st := m.ms(0, "status", "--json")
	var status struct {
		Pid int `json:"pid"`
	}
	mustJSON(t, st, &status)
	for fd, target := range inheritedFDs(t, status.Pid) {
		if fd > 2 {
			t.Errorf("the daemon has fd %d (%s) without close-on-exec", fd, target)
		}
	}

	s := startSandbox(t, sandbox.Options{Dir: filepath.Join(m.dir, "srv")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	password := "Fd-Pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if out, err := s.Client(ctx, "CREATE DATABASE shop; CREATE TABLE shop.t (n INT); INSERT INTO shop.t VALUES (1); SET sql_log_bin=0; CREATE USER 'bk'@'localhost' IDENTIFIED BY '"+password+"'; GRANT ALL ON *.* TO 'bk'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pw := filepath.Join(m.dir, "pw")
	os.WriteFile(pw, []byte(password), 0o600)
	m.ms(0, "backup", "credentials", "set", "--user", "bk", "--mysql-socket", s.Socket, "--password-file", pw)
	os.Remove(pw)

	bk := m.cmd("backup", "--databases", "shop")
	var out strings.Builder
	bk.Stdout, bk.Stderr = &out, &out
	if err := bk.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- bk.Wait() }()
	var pid int
	for deadline := time.Now().Add(time.Minute); pid == 0; {
		if b, err := os.ReadFile(filepath.Join(work, "pid")); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		select {
		case err := <-done:
			t.Fatalf("backup ended before the dump tool ran: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the dump tool did not start")
		}
	}
	fds := inheritedFDs(t, pid)
	os.WriteFile(filepath.Join(work, "go"), nil, 0o600)
	if err := <-done; err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	t.Logf("descriptors the dump tool inherits: %v", fds)
	for fd, target := range fds {
		switch {
		case target == "/dev/fuse":
			t.Errorf("the dump tool inherits /dev/fuse as fd %d", fd)
		case target == marker:
			t.Errorf("the dump tool inherits the launching shell's fd 7 as fd %d", fd)
		case fd > 3:
			t.Errorf("the dump tool inherits fd %d (%s)", fd, target)
		case fd == 3 && !strings.HasPrefix(target, "pipe:"):
			t.Errorf("fd 3 of the dump tool is %s, want its credential pipe", target)
		}
	}
	for _, fd := range []int{0, 1, 2, 3} {
		if _, ok := fds[fd]; !ok {
			t.Errorf("the dump tool has no fd %d: %v", fd, fds)
		}
	}
}

// TestAuditLogRotatedAway: logrotate without copytruncate renames the
// access log (or deletes it); the daemon's next denial is recorded in a
// new file at the configured path, not in the file that was moved away.
func TestAuditLogRotatedAway(t *testing.T) {
	m := newMount(t)
	deny := func(name string) {
		t.Helper()
		// A create with no rules is denied, and recorded.
		if err := os.WriteFile(filepath.Join(m.mnt, "mysqlbackup", name), []byte("x"), 0o600); err == nil {
			t.Fatalf("created %s without a rule", name)
		}
	}
	deny("first.cnf")
	if b, _ := os.ReadFile(m.audit); !strings.Contains(string(b), "first.cnf") {
		t.Fatalf("no denial in the audit log:\n%s", b)
	}
	if err := os.Rename(m.audit, m.audit+".1"); err != nil {
		t.Fatal(err)
	}
	deny("after-rename.cnf")
	b, err := os.ReadFile(m.audit)
	if err != nil || !strings.Contains(string(b), "after-rename.cnf") {
		t.Fatalf("the denial after the rename is not in a new %s: %v\n%s", m.audit, err, b)
	}
	if old, _ := os.ReadFile(m.audit + ".1"); strings.Contains(string(old), "after-rename.cnf") {
		t.Fatalf("the denial went into the renamed file:\n%s", old)
	}
	os.Remove(m.audit)
	deny("after-delete.cnf")
	if b, err := os.ReadFile(m.audit); err != nil || !strings.Contains(string(b), "after-delete.cnf") {
		t.Fatalf("the denial after the delete is not in a new %s: %v\n%s", m.audit, err, b)
	}
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func fileHas(p, s string) bool {
	b, _ := os.ReadFile(p)
	return strings.Contains(string(b), s)
}

// TestLazyUnmountAlarm: `umount -l` of the mount under the running daemon
// is an alarm in the daemon log (error level) and the audit log, raised
// while a process still holds a file on the detached mount, and not a
// normal "unmounted"; `mysecure umount` stays a normal unmount.
func TestLazyUnmountAlarm(t *testing.T) {
	testenv.RequireCommands(t, "umount")
	const alarm = "mount point detached while serving (lazy unmount?)"

	t.Run("mysecure umount", func(t *testing.T) {
		m := newMount(t)
		m.ms(0, "umount")
		if !eventually(5*time.Second, func() bool { return fileHas(m.log, `"msg":"unmounted"`) }) {
			t.Fatal("no 'unmounted' in the daemon log")
		}
		if fileHas(m.log, alarm) || fileHas(m.audit, "alarm") {
			t.Fatal("a normal umount raised the detach alarm")
		}
	})

	t.Run("umount -l", func(t *testing.T) {
		m := newMount(t)
		// A process holding the mount (as mysqld would) keeps the
		// FUSE connection up after a lazy unmount.
		held, err := os.Open(filepath.Join(m.mnt, "mysqlbackup"))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if out, err := exec.Command("umount", "-l", m.mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount -l: %v %s", err, out)
		}
		if !eventually(10*time.Second, func() bool { return fileHas(m.audit, `"decision":"alarm"`) }) {
			b, _ := os.ReadFile(m.audit)
			t.Fatalf("no alarm in the audit log while the detached mount is still held:\n%s", b)
		}
		if !fileHas(m.log, `"level":"ERROR","msg":"`+alarm+`"`) {
			b, _ := os.ReadFile(m.log)
			t.Fatalf("no error-level alarm in the daemon log:\n%s", b)
		}
		held.Close()
		if !eventually(10*time.Second, func() bool { return fileHas(m.log, "mysecure: error: "+alarm) }) {
			b, _ := os.ReadFile(m.log)
			t.Fatalf("the daemon did not exit with the alarm:\n%s", b)
		}
		if fileHas(m.log, `"msg":"unmounted"`) {
			t.Fatal("the lazy unmount was logged as a normal 'unmounted'")
		}
	})
}

// TestSocketDirMode: the daemon creates a missing socket directory
// root-only, leaves the mode of an existing one alone (it used to chmod
// a directory shared by the control and job sockets to 0711), and
// refuses one that group or others can write: whoever can write it can
// replace the socket that root sends credentials to.
func TestSocketDirMode(t *testing.T) {
	backupOSUser(t) // the group the job socket is for
	base := t.TempDir()
	os.Chmod(base, 0o755)

	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o750)
	os.Chmod(shared, 0o750)
	m := newMount(t, "MYSECURE_SOCKET="+filepath.Join(shared, "control.sock"),
		"MYSECURE_BACKUP_GROUP="+bkGroup, "MYSECURE_JOB_SOCKET="+filepath.Join(shared, "jobs.sock"))
	if fi, err := os.Stat(filepath.Join(shared, "jobs.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no job socket: %v", err)
	}
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o750 {
		t.Fatalf("the daemon changed the existing socket dir's mode from 0750 to %04o", fi.Mode().Perm())
	}
	if !fileHas(m.log, "members of the backup group cannot reach the job socket") {
		b, _ := os.ReadFile(m.log)
		t.Fatalf("no warning that the group cannot traverse the dir:\n%s", b)
	}
	m.ms(0, "umount")

	fresh := filepath.Join(base, "fresh", "run")
	m2 := newMount(t, "MYSECURE_SOCKET="+filepath.Join(fresh, "control.sock"))
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("a created socket dir has mode %04o, want 0700", fi.Mode().Perm())
	}
	m2.ms(0, "umount")

	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o770)
	os.Chmod(open, 0o770)
	c := m.cmd(append([]string{"mount", "--socket", filepath.Join(open, "control.sock")}, m.creds()...)...)
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || !strings.Contains(string(out), "not writable by group or others") {
		t.Fatalf("mount with a group-writable socket dir: %v, want exit 7\n%s", err, out)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o770 {
		t.Fatalf("the refused dir's mode changed to %04o", fi.Mode().Perm())
	}
	if isMounted(m.mnt) {
		t.Fatal("the refused mount left the volume mounted")
	}
}

func isMounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(b), " "+dir+" ")
}

// TestStatusWarnsRuleWithoutUser: `mysecure status` warns about ALLOW
// rules without --user on programs a local non-root user can execute
// (they can LD_PRELOAD their own code into it), and not about rules with
// --user or on programs only root can run; --json lists the warnings.
func TestStatusWarnsRuleWithoutUser(t *testing.T) {
	m := newMount(t)
	bin := filepath.Join(m.dir, "bin")
	os.MkdirAll(bin, 0o755)
	public := filepath.Join(bin, "public-cat")   // 0755 root:root: anyone runs it
	group := filepath.Join(bin, "group-cat")     // 0750 root:nogroup: the group runs it
	private := filepath.Join(bin, "private-cat") // 0700 root:root
	scoped := filepath.Join(bin, "scoped-cat")   // 0755, but the rule has --user
	for p, mode := range map[string]os.FileMode{public: 0o755, group: 0o750, private: 0o700, scoped: 0o755} {
		copyFile(t, "/usr/bin/cat", p, mode)
		os.Chmod(p, mode)
	}
	os.Chown(group, 0, 65534)

	out := m.ms(0, "status")
	if strings.Contains(out, "warning:") {
		t.Fatalf("warnings with no rules:\n%s", out)
	}
	m.aclAdd("ALLOW @mysqlbackup * " + public)
	m.aclAdd("ALLOW @mysqlbackup * " + group)
	m.aclAdd("ALLOW @mysqlbackup * " + private)
	m.aclAdd("ALLOW @mysqlbackup * " + scoped + " --user=0")
	m.aclAdd("DENY @mysqlbackup * /usr/bin/cat")

	out = m.ms(0, "status")
	for _, want := range []string{
		"mysecure: warning: rule 1 (ALLOW @mysqlbackup * " + public,
		"mysecure: warning: rule 2 (ALLOW @mysqlbackup * " + group,
		"LD_PRELOAD",
		"mysecure: hint: limit the rule to the account the program runs as: add --user=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	for _, not := range []string{private, scoped, "/usr/bin/cat"} {
		if strings.Contains(out, "has no --user and "+not+" ") {
			t.Errorf("status warns about %s:\n%s", not, out)
		}
	}
	var st struct {
		Warnings []struct {
			Kind    string `json:"kind"`
			Rule    int    `json:"rule"`
			Program string `json:"program"`
			Hint    string `json:"hint"`
		} `json:"warnings"`
	}
	mustJSON(t, m.ms(0, "status", "--json"), &st)
	if len(st.Warnings) != 2 || st.Warnings[0].Kind != "rule-without-user" || st.Warnings[0].Program != public ||
		st.Warnings[1].Program != group || st.Warnings[1].Rule != 2 || st.Warnings[0].Hint == "" {
		t.Fatalf("status --json warnings: %+v", st.Warnings)
	}
}
