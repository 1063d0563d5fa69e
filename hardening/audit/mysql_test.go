package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorded answers the audit's statements from a recorded server
// (testdata/mysql-8.4.3.txt) the way that server would, and remembers
// the statements it has no answer for.
type recorded struct {
	vars       map[string]string
	rows       map[string][][]string
	errs       map[string]string
	unrecorded []string
}

func loadRecorded(t *testing.T, path string, fill map[string]string) *recorded {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &recorded{vars: map[string]string{}, rows: map[string][][]string{}, errs: map[string]string{}}
	section, sql := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		for k, v := range fill {
			l = strings.ReplaceAll(l, k, v)
		}
		switch {
		case strings.HasPrefix(l, "#"):
		case l == "@variables":
			section = "vars"
		case strings.HasPrefix(l, "@query "):
			section, sql = "query", strings.TrimPrefix(l, "@query ")
			r.rows[sql] = nil
		case strings.HasPrefix(l, "@error "):
			section, sql = "error", strings.TrimPrefix(l, "@error ")
		case l == "":
		case section == "vars":
			k, v, _ := strings.Cut(l, "\t")
			r.vars[k] = v
		case section == "query":
			r.rows[sql] = append(r.rows[sql], strings.Split(l, "\t"))
		case section == "error":
			r.errs[sql] = l
		default:
			t.Fatalf("%s: line %q outside a section", path, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *recorded) query(_ context.Context, sql string) ([][]string, error) {
	if sql == "SELECT VERSION()" {
		return [][]string{{r.vars["version"]}}, nil
	}
	if name, ok := strings.CutPrefix(sql, "SELECT @@GLOBAL."); ok {
		v, ok := r.vars[name]
		if !ok {
			return nil, fmt.Errorf("ERROR 1193 (HY000): Unknown system variable '%s'", name)
		}
		return [][]string{{v}}, nil
	}
	if strings.Contains(sql, "information_schema.GLOBAL_VARIABLES") {
		// Gone since MySQL 8.0 (show_compatibility_56 was removed).
		return nil, fmt.Errorf("ERROR 1109 (42S02): Unknown table 'GLOBAL_VARIABLES' in information_schema")
	}
	if rest, ok := strings.CutPrefix(sql, "SELECT VARIABLE_VALUE FROM performance_schema.global_variables WHERE VARIABLE_NAME = '"); ok {
		if v, ok := r.vars[strings.TrimSuffix(rest, "'")]; ok {
			return [][]string{{v}}, nil
		}
		return nil, nil
	}
	if msg, ok := r.errs[sql]; ok {
		return nil, fmt.Errorf("%s", msg)
	}
	if rows, ok := r.rows[sql]; ok {
		return rows, nil
	}
	r.unrecorded = append(r.unrecorded, sql)
	return nil, fmt.Errorf("not recorded: %s", sql)
}

// mysqlHost makes the files a MySQL 8.4 host would have: a datadir with
// mysqld-auto.cnf, a pid file, a proc entry for the server (its command
// line and stderr), and option files.
func mysqlHost(t *testing.T, cnf, autoCnf string) (Target, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	datadir, run, proc := filepath.Join(dir, "data"), filepath.Join(dir, "run"), filepath.Join(dir, "proc")
	pdir := filepath.Join(proc, "4242")
	for _, d := range []string{datadir, run, filepath.Join(pdir, "fd")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(run, "mysqld.pid"):          "4242\n",
		filepath.Join(pdir, "status"):             "Name:\tmysqld\nUid:\t999\t999\t999\t999\n",
		filepath.Join(pdir, "cmdline"):            "/usr/sbin/mysqld\x00--allow-suspicious-udfs\x00",
		filepath.Join(pdir, "environ"):            "HOME=/var/lib/mysql\x00",
		filepath.Join(dir, "my.cnf"):              cnf,
		filepath.Join(datadir, "mysqld-auto.cnf"): autoCnf,
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Started in a container: stderr is a pipe to the runtime.
	for link, target := range map[string]string{filepath.Join(pdir, "exe"): "/usr/sbin/mysqld", filepath.Join(pdir, "fd", "2"): "pipe:[31337]"} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	tg := Target{OptionFiles: []string{filepath.Join(dir, "my.cnf")}, ServerUser: "mysql",
		Host: Host{Proc: proc, Homes: []string{}, ProfileFiles: []string{}, SystemdDirs: []string{}, CredentialFiles: []string{},
			LdPreload: filepath.Join(dir, "none"), MountInfo: filepath.Join(dir, "none"), Passwd: filepath.Join(dir, "none"),
			HardenState: filepath.Join(dir, "none"), Mount: filepath.Join(dir, "mnt")}}
	return tg, map[string]string{"{datadir}": datadir, "{run}": run}
}

// The option file: MariaDB-only groups and abbreviations that mysqld
// 8.4 ignores or refuses, and lines it does read.
const mysqlCnf = `[mariadbd]
skip-grant-tables
init-file = /etc/mysql/init.sql
plugin-load-add = other=other.so
allow-suspicious-udfs
[client-server]
skip-grant-tables
[galera]
skip-grant-tables
[mysqld]
skip-gr
loose-enable-skip-grant
allow-susp
plugin-load-add = evil=evil.so
[mysqld-8.4]
loose_skip_grant_tables
`

// mysqld-auto.cnf as MySQL 8.0.29+ writes it (Version 2).
const mysqlAutoCnf = `{"Version": 2, "mysql_static_variables": {"init_file": {"Value": "/var/lib/mysql-files/init.sql", "Metadata": {"Timestamp": 1733000000000000, "User": "root", "Host": "localhost"}}}, "mysql_dynamic_variables": {"local_infile": {"Value": "ON", "Metadata": {"Timestamp": 1733000000000000, "User": "root", "Host": "localhost"}}}, "mysql_sensitive_variables": {"mysql_sensitive_dynamic_variables": {"x": {"Value": "3f2a", "Metadata": {}}}, "key_encryption_key": "00", "iv": "00"}}`

// TestMySQLRecorded runs every check against a recorded MySQL 8.4.3
// server (see testdata/mysql-8.4.3.txt: written from knowledge of
// MySQL 8.4, not captured) and checks the MySQL-only behaviour.
func TestMySQLRecorded(t *testing.T) {
	tg, fill := mysqlHost(t, mysqlCnf, mysqlAutoCnf)
	rec := loadRecorded(t, "testdata/mysql-8.4.3.txt", fill)
	tg.Query = rec.query
	r, err := RunReport(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Server.Flavor != MySQL || r.Server.Version != "8.4.3" {
		t.Fatalf("server %+v, want mysql 8.4.3", r.Server)
	}
	if len(rec.unrecorded) > 0 {
		t.Errorf("statements with no recorded answer:\n%s", strings.Join(rec.unrecorded, "\n"))
	}
	fs := map[string]Finding{}
	for _, f := range r.Findings {
		fs[f.ID] = f
		for _, ev := range f.Evidence {
			if strings.Contains(ev.Text, "6BB4837EB743") || strings.Contains(ev.Text, "$A$005$") {
				t.Errorf("%s: evidence shows a password hash: %q", f.ID, ev.Text)
			}
		}
	}
	for _, c := range []struct {
		id       string
		r        Result
		want     []string
		unwanted []string
	}{
		// MySQL's log_error = stderr is a warning even where MariaDB's
		// empty log_error to a pipe passes.
		{"logging.error-log", Warn, []string{`log_error = "stderr"`, "pipe:[31337] (MySQL log_error = stderr)"}, nil},
		{"files.error-log", NotApplicable, nil, nil},
		{"logging.log-warnings", Pass, []string{"log_error_verbosity = 2"}, nil},
		{"logging.log-encryption", Fail, []string{"binlog_encryption = OFF"}, nil},
		{"logging.audit-plugin", Fail, []string{"audit_log plugin is not active"}, nil},
		{"auth.old-passwords", NotApplicable, []string{"applies to mariadb only"}, nil},
		{"auth.secure-auth", NotApplicable, []string{"applies to mariadb only"}, nil},
		{"auth.password-complexity", Fail, []string{"validate_password.policy = MEDIUM, validate_password.length = 8"}, nil},
		{"config.secure-file-priv", Pass, []string{"disabled (MySQL)"}, nil},
		{"config.skip-grant-tables", Pass, []string{`CURRENT_USER() is "root@localhost"`}, nil},
		{"config.symbolic-links", Pass, []string{"DISABLED"}, nil},
		{"config.local-infile", Pass, nil, nil},
		{"network.bind-address", Fail, []string{`bind_address = "*"`}, nil},
		{"network.tls-versions", Pass, []string{"TLSv1.2,TLSv1.3"}, nil},
		{"network.ciphers", Fail, []string{"not set"}, nil},
		{"network.ssl-type-remote", Fail, []string{"'app'@'%'"}, []string{"'web'@"}},
		{"network.x509-remote", Fail, []string{"'app'@'%'", "'web'@'10.0.0.%'"}, nil},
		{"accounts.weak-plugin", Fail, []string{"'app'@'%' (mysql_native_password)"}, []string{"root", "mysql."}},
		{"accounts.empty-password", Pass, nil, nil},
		{"accounts.wildcard-host", Fail, []string{"'app'@'%'", "'web'@'10.0.0.%'"}, []string{"filerole", "procrole"}},
		{"accounts.anonymous", Pass, nil, nil},
		{"accounts.connection-limits", Warn, []string{"'app'@'%' has no connection limit"}, []string{"'web'@", "root", "mysql.sys"}},
		{"privs.file", Fail, []string{"'app'@'%' holds FILE on", "'ops'@'localhost' holds FILE (through role 'filerole'@'%')"},
			[]string{"'root'@'localhost' holds", "'filerole'@'%' holds", "'web'@"}},
		// mandatory_roles: every account holds what procrole holds.
		{"privs.process", Fail, []string{"'web'@'10.0.0.%' holds PROCESS (through role 'procrole'@'%')", "'old'@'localhost' holds PROCESS (through role 'procrole'@'%')"},
			[]string{"'procrole'@'%' holds", "'root'@'localhost' holds"}},
		// Roles are not accounts with wildcard hosts.
		{"accounts.unused", Fail, []string{"'old'@'localhost' has an expired password", "'app'@'%' is not an administrator and not locked"},
			[]string{"'filerole'@", "'procrole'@", "'root'@", "mysql.sys", "'old'@'localhost' is not"}},
		{"config.memcached", Pass, []string{"not loaded"}, nil},
		{"logging.log-raw", Pass, []string{"log_raw = OFF"}, nil},
		{"auth.password-reuse", Fail, []string{"password_history = 0: a password may be reused", "password_reuse_interval = 0"}, nil},
		{"privs.super", Fail, []string{"'app'@'%' holds SYSTEM_VARIABLES_ADMIN"}, []string{"'mysql.session'@'localhost' holds"}},
		{"privs.definer", Fail, []string{"`shop`.`restock`"}, []string{"`sys`"}},
		{"databases.test", Pass, nil, nil},
		{"config.encryption-at-rest", Fail, nil, nil},
		{"replication.tls", NotApplicable, []string{"not a replica"}, nil},
		// Only the full option name in a group mysqld reads: not
		// [mariadbd], [client-server], [galera], nor abbreviations.
		{"files.skip-grant-tables", Fail, []string{"my.cnf:16: [mysqld-8.4] loose_skip_grant_tables"},
			[]string{"[mariadbd]", "[client-server]", "[galera]", "skip-gr\n", "loose-enable-skip-grant"}},
		{"config.suspicious-udfs", Fail, []string{"the server's command line has --allow-suspicious-udfs"},
			[]string{"[mariadbd]", "allow-susp\n", ":13:"}},
		// mysqld-auto.cnf is read for persisted variables.
		{"bypass.option-files", Fail, []string{"mysqld-auto.cnf: persisted init_file: runs an SQL file"}, []string{"[mariadbd]"}},
		{"bypass.plugins", Fail, []string{"[mysqld] plugin-load-add loads evil=evil.so"}, []string{"other"}},
	} {
		f, ok := fs[c.id]
		if !ok {
			t.Errorf("%s: no finding", c.id)
			continue
		}
		ev := evText(f) + "\n"
		if f.Result != c.r {
			t.Errorf("%s: got %s, want %s:\n%s", c.id, f.Result, c.r, ev)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(ev, w) {
				t.Errorf("%s: evidence lacks %q:\n%s", c.id, w, ev)
			}
		}
		for _, w := range c.unwanted {
			if strings.Contains(ev, w) {
				t.Errorf("%s: evidence has %q:\n%s", c.id, w, ev)
			}
		}
	}
	// MySQL's own fix texts.
	if f := fs["backup.point-in-time"]; !strings.Contains(f.Fix, "MySQL 8 default") {
		t.Errorf("backup.point-in-time: fix %q is not MySQL's", f.Fix)
	}
	if f := fs["auth.password-complexity"]; f.CISID != "2.7" || !strings.Contains(f.Fix, "component_validate_password") {
		t.Errorf("auth.password-complexity: CIS %s, fix %q: not MySQL's", f.CISID, f.Fix)
	}

	// The same files read as MariaDB's: its groups and abbreviations count.
	rec.vars["version"] = "10.11.19-MariaDB-0+deb12u1"
	fsM, err := Run(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fsM {
		if f.ID == "files.skip-grant-tables" {
			for _, w := range []string{"[mariadbd] skip-grant-tables", "[client-server] skip-grant-tables", "[galera] skip-grant-tables", "[mysqld] skip-gr", "[mysqld] loose-enable-skip-grant"} {
				if !strings.Contains(evText(f), w) {
					t.Errorf("as MariaDB, %s: evidence lacks %q:\n%s", f.ID, w, evText(f))
				}
			}
		}
		if f.ID == "bypass.option-files" && (!strings.Contains(evText(f), "[mariadbd] init-file") || strings.Contains(evText(f), "mysqld-auto.cnf")) {
			t.Errorf("as MariaDB, %s: want [mariadbd] init-file and no mysqld-auto.cnf:\n%s", f.ID, evText(f))
		}
	}
}

// Overrides of the recording: the cases a default MySQL 8.4 does not show.
func TestMySQLRecordedVariants(t *testing.T) {
	for _, c := range []struct {
		name string
		vars map[string]string
		id   string
		r    Result
		want string
	}{
		{"have_ssl present", map[string]string{"have_ssl": "YES", "tls_version": "TLSv1.1,TLSv1.2"}, "network.tls-versions", Fail, "allows TLSv1.1"},
		{"no certificate", map[string]string{"ssl_cert": ""}, "network.tls-versions", Fail, "ssl_cert is not set"},
		{"secure_file_priv empty", map[string]string{"secure_file_priv": ""}, "config.secure-file-priv", Fail, "empty"},
		{"log_error file", map[string]string{"log_error": "/var/log/mysql/error.log"}, "logging.error-log", Pass, "/var/log/mysql/error.log"},
		{"persisted ignored", map[string]string{"persisted_globals_load": "OFF"}, "bypass.option-files", Pass, ""},
		{"validate_password strong", map[string]string{"validate_password.policy": "STRONG", "validate_password.length": "14"}, "auth.password-complexity", Pass, "STRONG"},
		{"log-raw on", map[string]string{"log_raw": "ON"}, "logging.log-raw", Fail, "log_raw = ON: the logs keep passwords as typed"},
		{"password reuse restricted", map[string]string{"password_history": "5", "password_reuse_interval": "365"}, "auth.password-reuse", Pass, "password_reuse_interval = 365"},
		{"password history only", map[string]string{"password_history": "10", "password_reuse_interval": "30"}, "auth.password-reuse", Fail, "password_reuse_interval = 30: a password may be reused"},
		// 'web' changed its password 1733000000, "now" is 1733100000: more
		// than one day.
		{"password past its lifetime", map[string]string{"default_password_lifetime": "1"}, "accounts.unused", Fail, "'web'@'10.0.0.%' has a password 1 days old, past its lifetime of 1 days"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg, fill := mysqlHost(t, "[mysqld]\n", mysqlAutoCnf)
			rec := loadRecorded(t, "testdata/mysql-8.4.3.txt", fill)
			for k, v := range c.vars {
				rec.vars[k] = v
			}
			tg.Query, tg.Only = rec.query, []string{c.id}
			fs, err := Run(context.Background(), tg)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 || fs[0].Result != c.r || !strings.Contains(evText(fs[0]), c.want) {
				t.Fatalf("got %+v, want %s with %q", fs, c.r, c.want)
			}
		})
	}
}

// TestMySQLRecordedOnly covers the MySQL-only checks beyond variables: a
// loaded daemon_memcached plugin, and accounts.unused with the list of
// accounts in use.
func TestMySQLRecordedOnly(t *testing.T) {
	run := func(t *testing.T, edit func(*recorded, *Target)) Finding {
		t.Helper()
		tg, fill := mysqlHost(t, "[mysqld]\n", mysqlAutoCnf)
		rec := loadRecorded(t, "testdata/mysql-8.4.3.txt", fill)
		tg.Query = rec.query
		edit(rec, &tg)
		fs, err := Run(context.Background(), tg)
		if err != nil || len(fs) != 1 {
			t.Fatalf("%v %+v", err, fs)
		}
		return fs[0]
	}
	f := run(t, func(r *recorded, tg *Target) {
		r.rows["SELECT PLUGIN_STATUS, IFNULL(LOAD_OPTION, '') FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'daemon_memcached'"] = [][]string{{"ACTIVE", "ON"}}
		tg.Only = []string{"4.7"}
	})
	if f.ID != "config.memcached" || f.Result != Fail || !strings.Contains(evText(f), "daemon_memcached plugin is loaded (ACTIVE)") {
		t.Errorf("memcached loaded: %+v", f)
	}
	// With audit.accounts: the accounts not listed fail, the listed
	// ones pass, the expired one fails even when listed.
	f = run(t, func(r *recorded, tg *Target) {
		tg.Only, tg.InUse = []string{"accounts.unused"}, []string{"app@%", "'old'@'localhost'"}
	})
	ev := evText(f)
	if f.Result != Fail || !strings.Contains(ev, "'web'@'10.0.0.%' is neither an administrator (audit.admins) nor an account in use (audit.accounts)") ||
		!strings.Contains(ev, "'ops'@'localhost' is neither") || !strings.Contains(ev, "'old'@'localhost' has an expired password") || strings.Contains(ev, "'app'@") {
		t.Errorf("unused with audit.accounts: %s\n%s", f.Result, ev)
	}
	// A MySQL role granted to a role: without mandatory_roles, only ops
	// holds PROCESS, through filerole and then procrole.
	f = run(t, func(r *recorded, tg *Target) {
		r.vars["mandatory_roles"] = ""
		r.rows["SELECT FROM_USER, FROM_HOST FROM mysql.role_edges"] = [][]string{{"filerole", "%"}, {"procrole", "%"}}
		r.rows["SELECT FROM_USER, FROM_HOST, TO_USER, TO_HOST FROM mysql.role_edges"] = [][]string{{"filerole", "%", "ops", "localhost"}, {"procrole", "%", "filerole", "%"}}
		tg.Only = []string{"privs.process"}
	})
	ev = evText(f)
	if f.Result != Fail || !strings.Contains(ev, "'ops'@'localhost' holds PROCESS (through role 'filerole'@'%' > 'procrole'@'%')") ||
		strings.Contains(ev, "'web'@") || strings.Contains(ev, "'procrole'@'%' holds") || strings.Contains(ev, "'filerole'@'%' holds") {
		t.Errorf("nested MySQL roles: %s\n%s", f.Result, ev)
	}
	// A MySQL replica: a channel without TLS fails, one with the
	// source's certificate verified passes.
	const channels = "SELECT CHANNEL_NAME, HOST, USER, SSL_ALLOWED, SSL_VERIFY_SERVER_CERTIFICATE FROM performance_schema.replication_connection_configuration"
	for _, c := range []struct {
		rows [][]string
		want Result
		text string
	}{
		{[][]string{{"", "10.0.0.1", "repl", "NO", "NO"}}, Fail, `replication from 10.0.0.1 (connection "") does not use TLS (MASTER_SSL=0)`},
		{[][]string{{"", "10.0.0.1", "repl", "YES", "NO"}}, Fail, "does not verify the primary's certificate"},
		{[][]string{{"", "10.0.0.1", "repl", "YES", "YES"}, {"eu", "10.0.1.1", "repl", "YES", "YES"}}, Pass, `replication from 10.0.1.1 (connection "eu") inspected`},
	} {
		f = run(t, func(r *recorded, tg *Target) {
			r.rows[channels] = c.rows
			tg.Only = []string{"replication.tls"}
		})
		if f.Result != c.want || !strings.Contains(evText(f), c.text) {
			t.Errorf("MySQL channels %v: %s\n%s", c.rows, f.Result, evText(f))
		}
	}
	// On MariaDB, the MySQL-only checks do not apply.
	f = run(t, func(r *recorded, tg *Target) {
		r.vars["version"] = "10.11.19-MariaDB"
		tg.Only = []string{"config.memcached"}
	})
	if f.Result != NotApplicable {
		t.Errorf("memcached on MariaDB: %+v", f)
	}
}

func TestFlavorOf(t *testing.T) {
	for v, want := range map[string]Flavor{
		"8.4.3": MySQL, "8.0.40-0ubuntu0.22.04.1": MySQL, "8.4.3-commercial": MySQL,
		"10.11.19-MariaDB-0+deb12u1": MariaDB, "11.4.2-MariaDB": MariaDB, "5.5.5-10.11.6-MariaDB": MariaDB,
		"": "", "unknown": "",
	} {
		if got := FlavorOf(v); got != want {
			t.Errorf("FlavorOf(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestParsePersisted(t *testing.T) {
	v1 := `{"Version": 1, "mysql_server": {"max_connections": {"Value": "500", "Metadata": {"Timestamp": 1, "User": "root", "Host": "localhost"}}, "mysql_server_static_options": {"init_file": {"Value": "/x.sql", "Metadata": {}}}}}`
	for name, c := range map[string]struct {
		json string
		want []string
	}{
		"version 1": {v1, []string{"init_file=/x.sql", "max_connections=500"}},
		"version 2": {mysqlAutoCnf, []string{"init_file=/var/lib/mysql-files/init.sql", "local_infile=ON"}},
		"empty":     {`{"Version": 2}`, nil},
	} {
		opts, err := parsePersisted([]byte(c.json), "/d/mysqld-auto.cnf")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, o := range opts {
			got = append(got, o.Name+"="+o.Value)
			if o.File != "/d/mysqld-auto.cnf" || o.Line != 0 || !o.HasValue {
				t.Errorf("%s: %+v", name, o)
			}
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
	if _, err := parsePersisted([]byte("{"), "f"); err == nil {
		t.Error("bad JSON: no error")
	}
}

func FuzzParsePersisted(f *testing.F) {
	f.Add([]byte(mysqlAutoCnf))
	f.Add([]byte(`{"Version": 1, "mysql_server": {"a": {"Value": "1"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		opts, err := parsePersisted(b, "f")
		if err != nil && opts != nil {
			t.Fatal("options with an error")
		}
		for _, o := range opts {
			if o.File != "f" || o.Line != 0 || !o.HasValue || o.Group != "mysqld" {
				t.Fatalf("option %+v", o)
			}
		}
	})
}
