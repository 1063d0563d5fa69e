package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

const (
	bkGroup  = "mysecure-bkt"
	bkOSUser = "mysecure-bkt"
)

// backupOSUser makes a system user in a group of its own, for the test.
func backupOSUser(t *testing.T) (uid, gid uint32) {
	t.Helper()
	testenv.RequireCommands(t, "useradd", "groupadd", "userdel", "groupdel")
	if _, err := user.LookupGroup(bkGroup); err != nil {
		if out, err := exec.Command("groupadd", "--system", bkGroup).CombinedOutput(); err != nil {
			t.Fatalf("groupadd: %v %s", err, out)
		}
	}
	if _, err := user.Lookup(bkOSUser); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", bkGroup, bkOSUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("userdel", bkOSUser).Run()
		exec.Command("groupdel", bkGroup).Run()
	})
	u, err := user.Lookup(bkOSUser)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(u.Uid)
	b, _ := strconv.Atoi(u.Gid)
	return uint32(a), uint32(b)
}

// asUser runs the CLI (a copy others can execute) as uid/gid and returns
// its exit code and output.
func asUser(t *testing.T, m *mountEnv, bin string, uid, gid uint32, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, m.vars...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// TestBackupDaemonGroup: a member of the backup group starts a backup in
// the daemon without the MySQL password and cannot read, delete or
// restore it; others cannot reach the job socket at all.
func TestBackupDaemonGroup(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
	uid, gid := backupOSUser(t)
	runDir := t.TempDir()
	os.Chmod(runDir, 0o755)
	os.Chmod(filepath.Dir(runDir), 0o755)
	m := newMount(t, "MYSECURE_BACKUP_GROUP="+bkGroup, "MYSECURE_JOB_SOCKET="+filepath.Join(runDir, "run", "jobs.sock"))

	s := startSandbox(t, sandbox.Options{Dir: filepath.Join(m.dir, "srv")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	password := "Daemon-Pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if out, err := s.Client(ctx, "CREATE DATABASE shop; CREATE TABLE shop.cards (n VARCHAR(40)); INSERT INTO shop.cards VALUES ('CARD-9999-MARKER'); SET sql_log_bin=0; CREATE USER 'bk'@'localhost' IDENTIFIED BY '"+password+"'; GRANT ALL ON *.* TO 'bk'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pw := filepath.Join(m.dir, "pw")
	os.WriteFile(pw, []byte(password), 0o600)
	// Root stores the credentials through the daemon: no volume credential.
	m.ms(0, "backup", "credentials", "set", "--user", "bk", "--mysql-socket", s.Socket, "--password-file", pw)
	os.Remove(pw)
	out := m.ms(0, "backup", "credentials", "list", "--json")
	if !strings.Contains(out, `"has_password": true`) || strings.Contains(out, password) {
		t.Fatalf("credentials list: %s", out)
	}

	bin := filepath.Join(m.dir, "bin", "mysecure")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	copyFile(t, binary, bin, 0o755)

	w := watchProcs(password)
	code, out := asUser(t, m, bin, uid, gid, "backup", "--databases", "shop")
	if code != 0 {
		t.Fatalf("backup as a member of the backup group: exit %d\n%s", code, out)
	}
	w.finish(t, "mariadb-dump")
	id := regexp.MustCompile(`backup (\S+) complete`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no backup ID in %q", out)
	}
	code, out = asUser(t, m, bin, uid, gid, "backup", "list", "--json")
	var list struct {
		Backups []struct {
			ID string `json:"id"`
		} `json:"backups"`
	}
	if code != 0 || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &list) != nil || len(list.Backups) != 1 || list.Backups[0].ID != id[1] {
		t.Fatalf("backup list as the group member: exit %d %s", code, out)
	}
	if code, out := asUser(t, m, bin, uid, gid, "backup", "verify", id[1]); code != 0 {
		t.Fatalf("verify as the group member: exit %d %s", code, out)
	}
	for _, args := range [][]string{
		{"backup", "delete", id[1]},
		{"restore", id[1]},
		{"backup", "credentials", "list"},
		{"backup", "prune", "--keep-last", "1"},
	} {
		code, out := asUser(t, m, bin, uid, gid, args...)
		if code != 7 || !strings.Contains(out, "root only") {
			t.Fatalf("%v as the group member: exit %d, want 7\n%s", args, code, out)
		}
	}
	// The result cannot be read: not by the member, not by root.
	data := filepath.Join(m.mnt, "mysqlbackup", ".mysecure", "backups", id[1], "data.zst")
	if code, out := asUser(t, m, "/usr/bin/cat", uid, gid, data); code == 0 {
		t.Fatalf("the group member read the backup: %q", out[:min(len(out), 80)])
	}
	if out, err := read("/usr/bin/cat", data); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("root read the backup through the mount without a rule: %v", err)
	}
	// Anyone else cannot even reach the job socket.
	code, out = asUser(t, m, bin, 65534, 65534, "backup", "--databases", "shop")
	if code != 7 || !strings.Contains(out, "permission denied") {
		t.Fatalf("backup as nobody: exit %d, want 7\n%s", code, out)
	}
	// Root runs backups through the daemon without any credential.
	m.ms(0, "backup", "--databases", "shop")
	b, _ := os.ReadFile(m.audit)
	if !strings.Contains(string(b), `"uid":`+strconv.Itoa(int(uid))) || !strings.Contains(string(b), "job-start") {
		t.Fatalf("the audit log does not record the member's job:\n%s", b)
	}
	scanStore(t, m.store, password, "CARD-9999-MARKER")
	scanFiles(t, m.dir, password)
}
