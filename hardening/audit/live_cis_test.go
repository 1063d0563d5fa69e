package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLiveCIS misconfigures a real MariaDB server and its host fixtures,
// checks that each CIS and bypass check below fails, then fixes them and
// checks that each passes.
func TestLiveCIS(t *testing.T) {
	e := newLiveEnv(t)
	base := filepath.Dir(e.dir)
	home := filepath.Join(base, "home")
	units := filepath.Join(base, "systemd")
	os.MkdirAll(filepath.Join(units, "mariadb.service.d"), 0o755)
	os.MkdirAll(home, 0o755)
	passwd := filepath.Join(base, "passwd")
	os.WriteFile(passwd, []byte("mysql:x:100:101::/nonexistent:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(home, ".mysql_history"), []byte("CREATE USER x IDENTIFIED BY 'y';\n"), 0o600)
	os.WriteFile(filepath.Join(home, ".bashrc"), []byte("export MYSQL_PWD=hunter2\n"), 0o644)
	os.WriteFile(filepath.Join(home, ".my.cnf"), []byte("[client]\npassword=x\n"), 0o644)
	os.WriteFile(filepath.Join(units, "mariadb.service.d", "x.conf"), []byte("[Service]\nEnvironment=\"MYSQLD_OPTS=--skip-grant-tables\"\nEnvironment=LD_PRELOAD=/tmp/x.so\n"), 0o644)
	os.WriteFile(e.host.LdPreload, []byte("/tmp/evil.so\n"), 0o644)
	e.host.Homes, e.host.SystemdDirs, e.host.Passwd = []string{home}, []string{units}, passwd
	e.write("my.cnf", "[mysqld]\ninit-file = /nonexistent.sql\n[mysqld_safe]\nmalloc-lib = /tmp/evil.so\n", 0o644)
	if err := chownUser(e.top); err != nil {
		t.Fatal(err)
	}
	initFile := filepath.Join(e.dir, "init.sql")
	os.WriteFile(initFile, []byte("SELECT 1;\n"), 0o644)

	srv := e.start("--log-warnings=1", "--sql-mode=STRICT_TRANS_TABLES", "--default-password-lifetime=0",
		"--loose-old-passwords=1", "--allow-suspicious-udfs", "--init-file="+initFile, "--secure-file-priv="+e.dataDir,
		"--plugin-load-add=server_audit", "--server-audit-logging=OFF", "--plugin-load-add=auth_ed25519")
	e.sql(srv, "CREATE USER 'app'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('Xy9!long-enough-pw'); GRANT FILE, PROCESS, SHUTDOWN, CREATE USER, REPLICATION SLAVE, BINLOG ADMIN ON *.* TO 'app'@'%' WITH GRANT OPTION;"+
		" GRANT SELECT ON mysql.* TO 'app'@'%'; CREATE DATABASE d; CREATE DEFINER='root'@'localhost' PROCEDURE d.p() SQL SECURITY DEFINER SELECT 1;"+
		" CREATE ROLE rf; GRANT FILE ON *.* TO rf; CREATE USER 'r'@'localhost' IDENTIFIED VIA ed25519 USING PASSWORD('Xy9!long-enough-pw'); GRANT rf TO 'r'@'localhost';")
	fs := e.auditWith(clientQuery(srv), []string{"server_audit", "auth_ed25519"})
	for id, want := range map[string][]string{
		"os.command-history":           {".mysql_history exists"},
		"os.mysql-pwd-profiles":        {".bashrc:1"},
		"os.interactive-login":         {"/bin/bash"},
		"backup.point-in-time":         {"log_bin = 0"},
		"config.password-lifetime":     {"= 0"},
		"config.suspicious-udfs":       {"allow_suspicious_udfs = 1"},
		"config.strict-mode":           {"STRICT_TRANS_TABLES"},
		"config.encryption-at-rest":    {"not in mysecure's @mysql"},
		"auth.old-passwords":           {"old_passwords = 1"},
		"auth.password-complexity":     {"no password validation"},
		"accounts.wildcard-host":       {"'app'@'%'"},
		"network.ssl-type-remote":      {"'app'@'%'"},
		"network.x509-remote":          {"'app'@'%'"},
		"logging.log-warnings":         {"log_warnings = 1"},
		"logging.audit-plugin":         {"server_audit_logging = 0"},
		"logging.audit-unremovable":    {"load option ON"},
		"logging.log-encryption":       {"encrypt_binlog = 0"},
		"privs.file":                   {"'app'@'%' holds FILE", "'r'@'localhost' holds FILE"},
		"privs.process":                {"'app'@'%'"},
		"privs.super":                  {"BINLOG ADMIN"},
		"privs.shutdown":               {"'app'@'%'"},
		"privs.create-user":            {"'app'@'%'"},
		"privs.grant-option":           {"'app'@'%'"},
		"privs.replication-slave":      {"'app'@'%'"},
		"privs.full-access":            {"mysql schema"},
		"privs.definer":                {"`d`.`p`"},
		"replication.user-super":       {"'app'@'%'"},
		"accounts.unix-socket-admin":   {"'root'@'localhost'"},
		"bypass.server-cmdline":        {"--init-file"},
		"bypass.systemd":               {"x.conf:2", "LD_PRELOAD"},
		"bypass.option-files":          {"init-file", "malloc-lib"},
		"bypass.option-files-writable": {"CVE-2016-6662"},
		"bypass.ld-preload":            {"/tmp/evil.so"},
		"bypass.secure-file-priv-dir":  {"the datadir"},
		"files.credential-files":       {".my.cnf has mode 0644"},
		"harden.guard":                 {"has not been run"},
	} {
		expect(t, fs, id, Fail, want)
	}
	expect(t, fs, "os.server-account", Pass, []string{"runs as mysql"})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Fix.
	os.Remove(filepath.Join(home, ".mysql_history"))
	os.Symlink("/dev/null", filepath.Join(home, ".mysql_history"))
	os.WriteFile(filepath.Join(home, ".bashrc"), []byte("# no secrets\n"), 0o644)
	os.Chmod(filepath.Join(home, ".my.cnf"), 0o600)
	os.WriteFile(passwd, []byte("mysql:x:100:101::/nonexistent:/usr/sbin/nologin\n"), 0o644)
	os.Remove(filepath.Join(units, "mariadb.service.d", "x.conf"))
	os.WriteFile(e.host.LdPreload, nil, 0o644)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	os.Chown(e.top, 0, 0)
	// Outside /tmp, which the bypass check refuses.
	files, err := os.MkdirTemp("/var/lib", "mysecure-audit-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(files) })
	if err := chownUser(files); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(e.dir, "binlog")
	srv = e.start("--log-warnings=2", "--sql-mode=STRICT_ALL_TABLES", "--default-password-lifetime=365",
		"--loose-old-passwords=0", "--secure-file-priv="+files, "--log-bin="+logs,
		"--plugin-load-add=server_audit", "--server-audit=FORCE_PLUS_PERMANENT", "--server-audit-logging=ON",
		"--plugin-load-add=simple_password_check", "--simple-password-check-minimal-length=14", "--max-user-connections=20", "--plugin-load-add=auth_ed25519")
	e.sql(srv, "DROP USER 'app'@'%', 'r'@'localhost'; DROP ROLE rf; DROP DATABASE d;"+
		" ALTER USER 'mysql'@'localhost' ACCOUNT LOCK; ALTER USER 'root'@'localhost' IDENTIFIED VIA ed25519 USING PASSWORD('Xy9!long-enough-pw-root');"+
		" CREATE USER 'app'@'10.0.0.5' IDENTIFIED VIA ed25519 USING PASSWORD('Xy9!long-enough-pw') REQUIRE X509;")
	fs = e.auditWith(rootPwQuery(srv, "Xy9!long-enough-pw-root"), []string{"server_audit", "simple_password_check", "auth_ed25519"})
	for _, id := range []string{"os.command-history", "os.mysql-pwd-profiles", "os.interactive-login", "backup.point-in-time",
		"config.password-lifetime", "config.suspicious-udfs", "config.strict-mode", "auth.old-passwords", "auth.password-complexity",
		"accounts.wildcard-host", "network.ssl-type-remote", "network.x509-remote", "logging.log-warnings", "logging.audit-plugin",
		"logging.audit-unremovable", "privs.file", "privs.process", "privs.super", "privs.shutdown", "privs.create-user",
		"privs.grant-option", "privs.replication-slave", "privs.full-access", "privs.definer", "replication.user-super",
		"accounts.unix-socket-admin", "bypass.server-cmdline", "bypass.systemd", "bypass.option-files",
		"bypass.option-files-writable", "bypass.ld-preload", "bypass.secure-file-priv-dir", "files.credential-files",
		"files.binlogs", "files.audit-log", "accounts.connection-limits", "os.server-account"} {
		expect(t, fs, id, Pass, nil)
	}
}
