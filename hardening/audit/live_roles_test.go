package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// auditTarget runs every check with the target edited by edit.
func (e *liveEnv) auditTarget(q Query, edit func(*Target)) map[string]Finding {
	e.t.Helper()
	tg := Target{Query: q, OptionFiles: []string{e.top}, Host: e.host}
	edit(&tg)
	fs, err := Run(e.ctx, tg)
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]Finding{}
	for _, f := range fs {
		m[f.ID] = f
	}
	return m
}

// TestLiveRolesAndUnused: privileges held through MariaDB roles (a
// default role granted a role) and through PUBLIC are reported, and
// accounts.unused fails an unlocked account with an expired password and,
// with audit.accounts given, the accounts not listed; all pass once the
// roles are revoked and the accounts locked or listed.
func TestLiveRolesAndUnused(t *testing.T) {
	e := newLiveEnv(t)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	srv := e.start()
	e.sql(srv, "CREATE ROLE inner_r; GRANT FILE, SUPER, SHUTDOWN ON *.* TO inner_r;"+
		" CREATE ROLE outer_r; GRANT inner_r TO outer_r; GRANT CREATE USER ON *.* TO outer_r;"+
		" CREATE USER 'u'@'localhost' IDENTIFIED BY 'U!pw-12345'; GRANT outer_r TO 'u'@'localhost'; SET DEFAULT ROLE outer_r FOR 'u'@'localhost';"+
		// A role only an administrator holds gives no one else anything.
		" CREATE ROLE admin_r; GRANT PROCESS ON *.* TO admin_r; GRANT admin_r TO 'root'@'localhost';"+
		" GRANT REPLICATION CLIENT, PROCESS ON *.* TO PUBLIC;"+
		" CREATE USER 'stale'@'localhost' IDENTIFIED BY 'Stale!pw-1' PASSWORD EXPIRE;"+
		" CREATE USER 'app'@'10.0.0.5' IDENTIFIED BY 'App!pw-123';"+
		" INSTALL SONAME 'auth_ed25519';")
	// The server agrees: u reads a file through the roles.
	probe := filepath.Join(filepath.Dir(e.dir), "probe.txt")
	if err := os.WriteFile(probe, []byte("readable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := userPwQuery(srv, "u", "U!pw-12345")(e.ctx, "SELECT LENGTH(LOAD_FILE('"+probe+"')) > 0"); err != nil || len(out) != 1 || out[0][0] != "1" {
		t.Fatalf("u could not use FILE through its roles: %v %v", out, err)
	}
	// Database grants through roles and PUBLIC. MariaDB 10.11.19 then
	// forgets, in memory, the global privileges outer_r inherits from
	// inner_r until FLUSH PRIVILEGES (or a restart) rebuilds them from the
	// grant tables, which the audit reads: flush, and u has FILE again.
	e.sql(srv, "GRANT SELECT ON mysql.* TO outer_r; GRANT INSERT ON mysql.* TO PUBLIC; GRANT SELECT ON mysql.* TO admin_r;"+
		" CREATE DATABASE appdb; GRANT SELECT ON appdb.* TO inner_r WITH GRANT OPTION; FLUSH PRIVILEGES;")
	if out, err := userPwQuery(srv, "u", "U!pw-12345")(e.ctx, "SELECT LENGTH(LOAD_FILE('"+probe+"')) > 0"); err != nil || len(out) != 1 || out[0][0] != "1" {
		t.Fatalf("after database grants, u could not use FILE through its roles: %v %v", out, err)
	}

	fs := e.audit(clientQuery(srv))
	expect(t, fs, "privs.file", Fail, []string{"'u'@'localhost' holds FILE (through role outer_r > inner_r) on *.*"}, "inner_r holds", "'inner_r'@", "'outer_r'@")
	expect(t, fs, "privs.super", Fail, []string{"'u'@'localhost' holds SUPER (through role outer_r > inner_r)"})
	expect(t, fs, "privs.shutdown", Fail, []string{"'u'@'localhost' holds SHUTDOWN (through role outer_r > inner_r)"})
	expect(t, fs, "privs.create-user", Fail, []string{"'u'@'localhost' holds CREATE USER (through role outer_r)"})
	// PUBLIC once, not again for every account; admin_r through root
	// is not reported.
	expect(t, fs, "privs.process", Fail, []string{"PUBLIC (every account) holds PROCESS on *.*"}, "'u'@'localhost' holds", "'app'@", "admin_r")
	expect(t, fs, "privs.full-access", Fail, []string{"'u'@'localhost' has privileges on the mysql schema through role outer_r",
		"PUBLIC (every account) has privileges on the mysql schema"}, "role outer_r has", "admin_r", "'root'@'localhost' has")
	expect(t, fs, "privs.grant-option", Fail, []string{"'u'@'localhost' may grant privileges on `appdb` through role outer_r > inner_r"}, "'inner_r'@", "'root'@'localhost' may")
	if f := fs["privs.file"]; !strings.Contains(f.Evidence[0].Role, "outer_r > inner_r") || f.Evidence[0].Account != "'u'@'localhost'" {
		t.Errorf("privs.file: structured evidence %+v", f.Evidence[0])
	}
	// Without audit.accounts: the expired account fails, the others warn.
	expect(t, fs, "accounts.unused", Fail, []string{"'stale'@'localhost' has an expired password (PASSWORD EXPIRE) and is not locked",
		"'app'@'10.0.0.5' is not an administrator and not locked", "'u'@'localhost' is not an administrator"}, "'root'@", "'mysql'@", "inner_r", "PUBLIC")
	expect(t, fs, "accounts.connection-limits", Warn, []string{"'app'@'10.0.0.5' has no connection limit (MAX_USER_CONNECTIONS)"}, "'root'@", "'mysql'@")
	expect(t, fs, "bypass.plugins", Fail, []string{"mysql.plugin loads ed25519 from auth_ed25519.so at every start, and it is not allowed (audit.plugins)"})
	// With audit.accounts: the accounts not listed fail.
	fs = e.auditTarget(clientQuery(srv), func(tg *Target) { tg.InUse = []string{"'app'@'10.0.0.5'"} })
	expect(t, fs, "accounts.unused", Fail, []string{"'u'@'localhost' is neither an administrator (audit.admins) nor an account in use (audit.accounts), and is not locked"}, "'app'@")

	// Fix.
	e.sql(srv, "REVOKE inner_r FROM outer_r; REVOKE CREATE USER ON *.* FROM outer_r; REVOKE REPLICATION CLIENT, PROCESS ON *.* FROM PUBLIC;"+
		" REVOKE SELECT ON mysql.* FROM outer_r; REVOKE INSERT ON mysql.* FROM PUBLIC;"+
		" ALTER USER 'stale'@'localhost' ACCOUNT LOCK;"+
		" ALTER USER 'app'@'10.0.0.5' WITH MAX_USER_CONNECTIONS 10; ALTER USER 'u'@'localhost' WITH MAX_USER_CONNECTIONS 10;")
	fs = e.auditTarget(clientQuery(srv), func(tg *Target) {
		tg.InUse, tg.AllowedPlugins = []string{"app@10.0.0.5", "'u'@'localhost'"}, []string{"ed25519"}
	})
	expect(t, fs, "accounts.connection-limits", Pass, []string{"max_user_connections = 0"})
	expect(t, fs, "bypass.plugins", Pass, []string{"allowed plugins: ed25519"})
	for _, id := range []string{"privs.file", "privs.super", "privs.shutdown", "privs.create-user", "privs.process", "privs.full-access", "privs.grant-option"} {
		expect(t, fs, id, Pass, nil)
	}
	expect(t, fs, "accounts.unused", Pass, []string{"unlocked logins inspected"})
}
