package audit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// startOn starts the sandbox server on another datadir.
func (e *liveEnv) startOn(dataDir string, args ...string) *sandbox.Server {
	e.t.Helper()
	srv, err := sandbox.Start(e.ctx, sandbox.Options{Dir: e.dir, DataDir: dataDir, Args: args})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

// copyPlugin copies a plugin library of the system's plugin directory
// into dir (owned by root, mode 0644).
func copyPlugin(t *testing.T, name, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/usr/lib/mysql/plugin", name))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// mountTmpfs mounts a tmpfs (a file system of its own, unlike the
// test's temporary directory on the root file system) at dir until the
// test ends; register it before the servers that use it, so that they
// stop first.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m,mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// TestLiveHostAndLogs: a server with its datadir and logs on the root
// file system, listening on every address, with a plugin directory
// others may write, its error log thrown away, world-readable binary and
// audit logs, a password in an option file, a process with MYSQL_PWD and
// no encryption fails the checks below; the same server initialized on
// a file system of its own, with the engine's encryption on and the
// rest fixed, passes them.
func TestLiveHostAndLogs(t *testing.T) {
	e := newLiveEnv(t)
	base := filepath.Dir(e.dir)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n[client]\npassword = s3cret\n", 0o600)
	plugins := filepath.Join(base, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	e.chmod(plugins, 0o777)
	copyPlugin(t, "server_audit.so", plugins)
	pwd := exec.Command("sleep", "600")
	pwd.Env = []string{"MYSQL_PWD=s3cret"}
	if err := pwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pwd.Process.Kill(); _ = pwd.Wait() })

	binlog, auditLog := filepath.Join(e.dir, "binlog"), filepath.Join(e.dir, "audit.log")
	srv := e.start("--bind-address=0.0.0.0", "--skip-log-error", "--plugin-dir="+plugins, "--log-bin="+binlog,
		"--plugin-load-add=server_audit", "--server-audit-logging=ON", "--server-audit-file-path="+auditLog)
	e.sql(srv, "CREATE DATABASE d; CREATE TABLE d.t (v INT); INSERT INTO d.t VALUES (1);")
	e.chmod(binlog+".000001", 0o644)
	e.chmod(auditLog, 0o644)
	fs := e.audit(clientQuery(srv))
	for id, want := range map[string][]string{
		"os.datadir-partition":      {e.dataDir + "/ is on the same file system as /"},
		"logging.partition":         {binlog + " is on the same file system as /"},
		"network.bind-address":      {`bind_address = "0.0.0.0": the server listens on every address`},
		"files.plugin-dir":          {"plugin directory " + plugins + " has mode 0777"},
		"os.mysql-pwd-env":          {fmt.Sprintf("process %d (sleep) has MYSQL_PWD in its environment", pwd.Process.Pid)},
		"logging.error-log":         {"which is /dev/null: the error log is discarded"},
		"files.binlogs":             {"binlog.000001 has mode 0644, more than 0660"},
		"files.audit-log":           {"audit.log has mode 0644, more than 0660"},
		"files.option-passwords":    {"my.cnf:4: [client] password="},
		"config.encryption-at-rest": {"innodb_encrypt_tables = \"OFF\""},
		"logging.log-encryption":    {"encrypt_binlog = 0"},
	} {
		expect(t, fs, id, Fail, want)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	_ = pwd.Process.Kill()
	_ = pwd.Wait()

	// Fixed, on a file system of its own.
	own := filepath.Join(base, "own")
	mountTmpfs(t, own)
	if err := chownUser(own); err != nil { // the server writes its logs here
		t.Fatal(err)
	}
	data := filepath.Join(own, "data")
	if err := sandbox.Init(e.ctx, sandbox.Options{Dir: e.dir, DataDir: data}); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(own, "keys.txt")
	if err := os.WriteFile(keys, []byte("1;a7addd9adea9978fda19f21e6be987880e68ac92632ca052e5bb42b1a506939a\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := chownUser(keys); err != nil {
		t.Fatal(err)
	}
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	binlog, auditLog = filepath.Join(own, "binlog"), filepath.Join(own, "audit.log")
	srv = e.startOn(data, "--log-error="+filepath.Join(own, "error.log"), "--log-bin="+binlog,
		"--plugin-load-add=server_audit", "--server-audit-logging=ON", "--server-audit-file-path="+auditLog,
		"--plugin-load-add=file_key_management", "--file-key-management-filename="+keys, "--innodb-encrypt-tables=ON", "--encrypt-binlog=ON")
	e.sql(srv, "CREATE DATABASE d; CREATE TABLE d.t (v INT); INSERT INTO d.t VALUES (1);")
	e.chmod(auditLog, 0o640)
	fs = e.audit(clientQuery(srv))
	for id, want := range map[string][]string{
		"os.datadir-partition":      {data + "/ is on a file system of its own"},
		"logging.partition":         {binlog + " is on a file system of its own", filepath.Join(own, "error.log") + " is on a file system of its own"},
		"network.bind-address":      {"bind_address = 127.0.0.1"},
		"files.plugin-dir":          {"/usr/lib/mysql/plugin"},
		"logging.error-log":         {"log_error = " + filepath.Join(own, "error.log")},
		"files.binlogs":             {"binlog.000001 (mode 0660, owner mysql)"},
		"files.audit-log":           {"audit.log (mode 0640, owner mysql)"},
		"files.option-passwords":    nil,
		"config.encryption-at-rest": {"innodb_encrypt_tables = ON"},
		"logging.log-encryption":    {"encrypt_binlog = 1"},
		"files.key-file":            {"keys.txt (mode 0400, owner mysql)"},
	} {
		expect(t, fs, id, Pass, want)
	}
	expect(t, fs, "os.mysql-pwd-env", Pass, nil, "(sleep)", strconv.Itoa(pwd.Process.Pid)+" ")
}

// TestLiveServerAsRoot: a server started with --user=root fails
// os.server-account and bypass.server-cmdline (TestLiveCIS has it pass
// as mysql).
func TestLiveServerAsRoot(t *testing.T) {
	e := newLiveEnv(t)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	dir := filepath.Join(filepath.Dir(e.dir), "root-sb")
	o := sandbox.Options{Dir: dir, User: "root"}
	if err := sandbox.Init(e.ctx, o); err != nil {
		t.Fatal(err)
	}
	srv, err := sandbox.Start(e.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	r, err := RunReport(context.Background(), Target{Query: clientQuery(srv), OptionFiles: []string{e.top}, Host: e.host,
		Only: []string{"os.server-account", "bypass.server-cmdline"}})
	if err != nil {
		t.Fatal(err)
	}
	fs := map[string]Finding{}
	for _, f := range r.Findings {
		fs[f.ID] = f
	}
	expect(t, fs, "os.server-account", Fail, []string{fmt.Sprintf("the server (pid %d) runs as root", srv.Pid())})
	expect(t, fs, "bypass.server-cmdline", Fail, []string{"was started with --user: it runs the server as root"})
}
