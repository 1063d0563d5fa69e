package audit

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// userPwQuery logs in as user with a password over the socket.
func userPwQuery(srv *sandbox.Server, user, pw string) Query {
	return func(ctx context.Context, sql string) ([][]string, error) {
		cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+srv.Socket, "-u"+user, "--password="+pw, "--batch", "--skip-column-names", "--raw")
		cmd.Stdin = strings.NewReader(sql)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, out)
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if l != "" {
				rows = append(rows, strings.Split(l, "\t"))
			}
		}
		return rows, nil
	}
}

// needsPrivileges are the checks that read accounts, grants or objects
// that a low-privileged account cannot see: with such an account they
// must report error.
var needsPrivileges = []string{
	"accounts.unix-socket-admin", "network.x509-remote", "network.ssl-type-remote",
	"databases.test", "privs.full-access", "privs.file", "privs.process", "privs.super", "privs.shutdown",
	"privs.create-user", "privs.grant-option", "privs.replication-slave", "privs.definer",
	"accounts.weak-plugin", "accounts.wildcard-host", "accounts.anonymous", "accounts.root-remote",
	"accounts.empty-password", "config.skip-name-resolve", "accounts.connection-limits",
	"replication.user-super", "bypass.plugins", "accounts.unused", "replication.user-tls",
}

// TestLiveLowPrivilege audits a misconfigured server as accounts that
// cannot see the grant tables: every check that needs them reports
// error, and no check passes (or warns) where root's audit fails.
func TestLiveLowPrivilege(t *testing.T) {
	e := newLiveEnv(t)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	srv := e.start("--skip-name-resolve=0")
	e.sql(srv, "CREATE DATABASE test; CREATE DATABASE appdb; CREATE USER ''@'localhost';"+
		" CREATE USER 'nopw'@'app.example.com'; CREATE USER 'root'@'10.0.0.%' IDENTIFIED BY 'Rem0te!pw';"+
		" CREATE USER 'app'@'%' IDENTIFIED BY 'App!pw-1'; GRANT FILE, PROCESS, SHUTDOWN, CREATE USER, SUPER, REPLICATION SLAVE ON *.* TO 'app'@'%' WITH GRANT OPTION;"+
		" GRANT SELECT ON mysql.* TO 'app'@'%';"+
		" CREATE ROLE rf; GRANT FILE ON *.* TO rf; CREATE USER 'r'@'localhost' IDENTIFIED BY 'R!pw-1'; GRANT rf TO 'r'@'localhost';"+
		" CREATE DEFINER='root'@'localhost' PROCEDURE appdb.p() SQL SECURITY DEFINER SELECT 1;"+
		" INSTALL SONAME 'auth_ed25519';"+
		// The low-privileged auditors.
		" CREATE USER 'usage'@'localhost' IDENTIFIED BY 'Low!pw-1';"+
		" CREATE USER 'onedb'@'localhost' IDENTIFIED BY 'Low!pw-1'; GRANT SELECT ON appdb.* TO 'onedb'@'localhost';"+
		// Table grants on the account tables, but no database-wide
		// SELECT on mysql: information_schema then shows this account
		// only its own privileges and databases.
		" CREATE USER 'tables'@'localhost' IDENTIFIED BY 'Low!pw-1';"+
		" GRANT SELECT ON mysql.global_priv TO 'tables'@'localhost'; GRANT SELECT ON mysql.user TO 'tables'@'localhost';"+
		" GRANT SELECT ON mysql.db TO 'tables'@'localhost'; GRANT SELECT ON mysql.plugin TO 'tables'@'localhost';"+
		" GRANT SELECT ON mysql.func TO 'tables'@'localhost'; GRANT SELECT ON mysql.roles_mapping TO 'tables'@'localhost';"+
		// SELECT on the mysql database: every account and grant, but
		// information_schema still hides databases and objects.
		" CREATE USER 'mysqldb'@'localhost' IDENTIFIED BY 'Low!pw-1'; GRANT SELECT ON mysql.* TO 'mysqldb'@'localhost';")

	root := e.auditWith(clientQuery(srv), nil)
	for _, id := range needsPrivileges {
		if root[id].Result != Fail && root[id].Result != Warn {
			t.Errorf("as root, %s: got %s, want fail or warn (the seeded misconfiguration)\n%s", id, root[id].Result, evText(root[id]))
		}
	}
	for _, u := range []string{"usage", "onedb", "tables", "mysqldb"} {
		t.Run(u, func(t *testing.T) {
			fs := e.auditWith(userPwQuery(srv, u, "Low!pw-1"), nil)
			if len(fs) != len(Checks()) {
				t.Fatalf("%d findings, want %d", len(fs), len(Checks()))
			}
			for id, f := range fs {
				if testing.Verbose() {
					t.Logf("%s\t%s\t%.100q (root: %s)", f.Result, id, f.Summary, root[id].Result)
				}
				if r := root[id].Result; (r == Fail || r == Warn) && f.Result != r && f.Result != Error {
					t.Errorf("%s: got %s as %s, but root's audit says %s:\n%s", id, f.Result, u, r, evText(f))
				}
			}
			for _, id := range needsPrivileges {
				if u == "mysqldb" && id != "databases.test" && id != "privs.definer" {
					if fs[id].Result != root[id].Result {
						t.Errorf("%s: got %s as %s, want %s as root:\n%s", id, fs[id].Result, u, root[id].Result, evText(fs[id]))
					}
					continue
				}
				if u == "tables" && (strings.HasPrefix(id, "accounts.") && id != "accounts.unix-socket-admin" || strings.HasPrefix(id, "network.") || id == "config.skip-name-resolve" || id == "bypass.plugins") {
					// It may read the account and plugin tables: these
					// checks run, and must find what root finds.
					if fs[id].Result != root[id].Result {
						t.Errorf("%s: got %s as %s, want %s as root:\n%s", id, fs[id].Result, u, root[id].Result, evText(fs[id]))
					}
					continue
				}
				expect(t, fs, id, Error, nil, "internal error")
			}
		})
	}
}
