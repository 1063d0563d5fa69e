package audit

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// clientQuery is a Query on top of the sandbox's mariadb client: rows
// are lines, columns are tab-separated, and batch-mode escapes are undone.
func clientQuery(srv *sandbox.Server) Query {
	return func(ctx context.Context, sql string) ([][]string, error) {
		out, err := srv.Client(ctx, sql)
		if err != nil {
			return nil, err
		}
		// Every row ends in a newline; a row of one empty column (SELECT
		// @@log_error when it is empty) is an empty line.
		if out == "" {
			return nil, nil
		}
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			fields := strings.Split(line, "\t")
			for i, f := range fields {
				fields[i] = unescapeBatch(f)
			}
			rows = append(rows, fields)
		}
		return rows, nil
	}
}

// unescapeBatch undoes the mariadb client's --batch escapes.
func unescapeBatch(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i == len(s)-1 {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

type liveEnv struct {
	t       *testing.T
	ctx     context.Context
	dir     string // sandbox dir
	dataDir string
	etc     string // option files
	top     string // etc/my.cnf
	host    Host
}

// evText joins a finding's evidence texts.
func evText(f Finding) string {
	var ss []string
	for _, e := range f.Evidence {
		ss = append(ss, e.Text)
	}
	return strings.Join(ss, "\n")
}

// original are the checks TestLive was written for.
var original = []string{"accounts.anonymous", "accounts.root-remote", "accounts.empty-password", "accounts.weak-plugin",
	"databases.test", "config.local-infile", "config.secure-file-priv", "config.skip-name-resolve",
	"config.require-secure-transport", "config.symbolic-links", "config.skip-grant-tables", "files.datadir",
	"files.error-log", "files.option-files", "files.skip-grant-tables"}

func newLiveEnv(t *testing.T) *liveEnv {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	base := t.TempDir()
	// The server runs as mysql and must reach its directory.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := &liveEnv{t: t, ctx: ctx, dir: filepath.Join(base, "sb"), etc: filepath.Join(base, "etc")}
	e.host = Host{Homes: []string{}, ProfileFiles: []string{}, SystemdDirs: []string{}, CredentialFiles: []string{}, LdPreload: filepath.Join(base, "ld.so.preload"), HardenState: filepath.Join(base, "harden.json"), Mount: filepath.Join(base, "mnt")}
	e.dataDir = filepath.Join(e.dir, "data")
	e.top = filepath.Join(e.etc, "my.cnf")
	if err := sandbox.Init(ctx, sandbox.Options{Dir: e.dir}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *liveEnv) start(args ...string) *sandbox.Server {
	e.t.Helper()
	srv, err := sandbox.Start(e.ctx, sandbox.Options{Dir: e.dir, Args: args})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

func (e *liveEnv) sql(srv *sandbox.Server, sql string) {
	e.t.Helper()
	if out, err := srv.Client(e.ctx, sql); err != nil {
		e.t.Fatalf("%v\n%s", err, out)
	}
}

// write writes an option file with mode (chmod, so the umask does not
// interfere).
func (e *liveEnv) write(name, text string, mode os.FileMode) {
	e.t.Helper()
	p := filepath.Join(e.etc, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		e.t.Fatal(err)
	}
	e.chmod(p, mode)
}

func (e *liveEnv) chmod(p string, mode os.FileMode) {
	e.t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		e.t.Fatal(err)
	}
}

func (e *liveEnv) audit(q Query) map[string]Finding {
	e.t.Helper()
	fs, err := Run(e.ctx, Target{Query: q, OptionFiles: []string{e.top}, Host: e.host})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(fs) != len(Checks()) {
		e.t.Fatalf("%d findings, want %d", len(fs), len(Checks()))
	}
	m := map[string]Finding{}
	for i, f := range fs {
		if f.ID != Checks()[i].ID {
			e.t.Errorf("finding %d is %s, want %s", i, f.ID, Checks()[i].ID)
		}
		for _, ev := range f.Evidence {
			if strings.Contains(ev.Text, "s3cret") || strings.Contains(ev.Value, "s3cret") {
				e.t.Errorf("%s: evidence shows a password: %q", f.ID, ev)
			}
		}
		m[f.ID] = f
	}
	return m
}

// expect checks a finding's result and that each want string appears in
// its evidence and each unwanted one does not.
func expect(t *testing.T, fs map[string]Finding, id string, r Result, want []string, unwanted ...string) {
	t.Helper()
	f, ok := fs[id]
	if !ok {
		t.Errorf("%s: no finding", id)
		return
	}
	ev := evText(f)
	if f.Result != r {
		t.Errorf("%s: got %s, want %s; evidence:\n%s", id, f.Result, r, ev)
		return
	}
	shown(id, r)
	for _, w := range want {
		if !strings.Contains(ev, w) {
			t.Errorf("%s: evidence lacks %q:\n%s", id, w, ev)
		}
	}
	for _, w := range unwanted {
		if strings.Contains(ev, w) {
			t.Errorf("%s: evidence has %q:\n%s", id, w, ev)
		}
	}
}

// TestLive seeds every misconfiguration into a real server and its files,
// checks that the audit reports each, then fixes them and checks that
// every check passes.
func TestLive(t *testing.T) {
	e := newLiveEnv(t)

	// Option files: a top file including a directory, as on Debian.
	e.write("my.cnf", fmt.Sprintf("[client-server]\nsocket = /nonexistent.sock\n\n!includedir %s/conf.d\n", e.etc), 0o644)
	e.write("conf.d/50-server.cnf", "[mariadbd]\nlocal_infile = 0\n[mysqld]\nLoose_Enable_Skip_Gr\nskip-grant-tables = 0\n", 0o644)
	e.write("conf.d/60-client.cnf", "[client]\nuser = app\npassword = s3cret\n[mysqld_safe]\nskip-grant-tables\n", 0o644)
	e.write("conf.d/70-ww.cnf", "[mysqld]\n", 0o666)
	e.write("conf.d/80-ignored.txt", "[mysqld]\nskip-grant-tables\n", 0o644)

	// A later --skip-name-resolve=0 overrides the sandbox's
	// --skip-name-resolve.
	srv := e.start("--local-infile=1", "--secure-file-priv=", "--skip-name-resolve=0", "--symbolic-links")
	e.sql(srv, "CREATE USER ''@'localhost'; CREATE USER ''@'%';"+
		" GRANT ALL ON `test\\_%`.* TO ''@'%';"+
		" CREATE USER 'root'@'%' IDENTIFIED BY 'Rem0te!pw';"+
		" CREATE USER 'nopw'@'app.example.com';"+
		" CREATE USER 'either'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');"+
		" CREATE USER 'sock'@'localhost' IDENTIFIED VIA unix_socket;"+
		" CREATE USER 'locked'@'%' ACCOUNT LOCK;"+
		" CREATE ROLE 'r1';"+
		" CREATE USER 'old'@'localhost' IDENTIFIED VIA mysql_old_password USING '7c786c222596437b';"+
		" CREATE USER 'native'@'localhost' IDENTIFIED BY 'N4tive!pw';"+
		" CREATE DATABASE test;")
	e.chmod(e.dataDir, 0o777)
	e.chmod(filepath.Join(e.dir, "error.log"), 0o666)

	fs := e.audit(clientQuery(srv))
	expect(t, fs, "accounts.anonymous", Fail, []string{"''@'localhost'", "''@'%'"})
	expect(t, fs, "accounts.root-remote", Fail, []string{"'root'@'%'"}, "'root'@'localhost'")
	expect(t, fs, "accounts.empty-password", Fail,
		[]string{"'nopw'@'app.example.com'", "'either'@'localhost'", "''@'%'"},
		"'locked'@", "'sock'@", "'r1'", "'root'@", "mariadb.sys")
	expect(t, fs, "accounts.weak-plugin", Fail,
		[]string{"'old'@'localhost' (mysql_old_password)", "'native'@'localhost' (mysql_native_password)", "'root'@'%'"},
		"'root'@'localhost'", "'mysql'@")
	expect(t, fs, "databases.test", Fail, []string{"database `test` exists", `test\_%`})
	expect(t, fs, "config.local-infile", Fail, nil)
	expect(t, fs, "config.secure-file-priv", Fail, []string{"NULL"})
	expect(t, fs, "config.skip-name-resolve", Fail, []string{"skip_name_resolve = 0", "'nopw'@'app.example.com'"})
	expect(t, fs, "config.require-secure-transport", Fail, []string{"require_secure_transport = 0"})
	expect(t, fs, "config.symbolic-links", Fail, []string{"YES"})
	expect(t, fs, "config.skip-grant-tables", Pass, nil)
	expect(t, fs, "files.datadir", Fail, []string{"mode 0777"})
	expect(t, fs, "files.error-log", Fail, []string{"error.log has mode 0666, more than 0660"})
	expect(t, fs, "files.option-files", Fail, []string{"70-ww.cnf: mode 0666"}, "50-server.cnf:", "60-client.cnf:")
	expect(t, fs, "files.option-passwords", Fail, []string{"60-client.cnf:3: [client] password="}, "50-server.cnf")
	expect(t, fs, "files.skip-grant-tables", Fail, []string{"50-server.cnf:4: [mysqld] Loose_Enable_Skip_Gr"},
		"50-server.cnf:5", "60-client.cnf", "80-ignored")

	// Without mysql.global_priv (older servers), accounts come from the
	// mysql.user view: the same accounts are found.
	noGlobalPriv := func(ctx context.Context, sql string) ([][]string, error) {
		if strings.Contains(sql, "global_priv") {
			return nil, fmt.Errorf("table mysql.global_priv does not exist")
		}
		return clientQuery(srv)(ctx, sql)
	}
	fs = e.audit(noGlobalPriv)
	expect(t, fs, "accounts.anonymous", Fail, []string{"''@'localhost'", "''@'%'"})
	expect(t, fs, "accounts.root-remote", Fail, []string{"'root'@'%'"})
	expect(t, fs, "accounts.empty-password", Fail, []string{"'nopw'@'app.example.com'"}, "'r1'")
	expect(t, fs, "accounts.weak-plugin", Fail, []string{"'old'@'localhost'"})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// A server running with skip-grant-tables.
	srv = e.start("--skip-grant-tables")
	fs = e.audit(clientQuery(srv))
	expect(t, fs, "config.skip-grant-tables", Fail, []string{"skip_grant_tables = 1"})
	// Without the variable, CURRENT_USER() gives it away.
	noVar := func(ctx context.Context, sql string) ([][]string, error) {
		if strings.Contains(sql, "skip_grant_tables") {
			return nil, fmt.Errorf("unknown system variable")
		}
		return clientQuery(srv)(ctx, sql)
	}
	fs = e.audit(noVar)
	expect(t, fs, "config.skip-grant-tables", Fail, []string{`CURRENT_USER() is "@"`})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Fix everything.
	files := filepath.Join(e.dir, "files")
	if err := os.Mkdir(files, 0o750); err != nil {
		t.Fatal(err)
	}
	srv = e.start("--local-infile=0", "--secure-file-priv="+files, "--skip-symbolic-links", "--require-secure-transport=ON")
	e.sql(srv, "DROP USER ''@'localhost', ''@'%', 'root'@'%', 'nopw'@'app.example.com', 'either'@'localhost',"+
		" 'old'@'localhost', 'native'@'localhost'; DROP DATABASE test;")
	e.chmod(e.dataDir, 0o750)
	e.chmod(filepath.Join(e.dir, "error.log"), 0o640)
	e.write("conf.d/50-server.cnf", "[mariadbd]\nlocal_infile = 0\n[mysqld]\nskip-grant-tables = 0\ndisable-skip-grant-tables\n", 0o644)
	e.chmod(filepath.Join(e.etc, "conf.d/60-client.cnf"), 0o600)
	e.chmod(filepath.Join(e.etc, "conf.d/70-ww.cnf"), 0o644)

	fs = e.audit(clientQuery(srv))
	for _, id := range original {
		expect(t, fs, id, Pass, nil)
	}
	expect(t, fs, "config.secure-file-priv", Pass, []string{files + "/"})

	// One query failing makes only its check an error.
	noDB := func(ctx context.Context, sql string) ([][]string, error) {
		if strings.Contains(sql, "mysql.db") {
			return nil, fmt.Errorf("SELECT command denied")
		}
		return clientQuery(srv)(ctx, sql)
	}
	fs = e.audit(noDB)
	for _, id := range original {
		want := Pass
		if id == "databases.test" {
			want = Error
		}
		expect(t, fs, id, want, nil)
	}
	expect(t, fs, "databases.test", Error, []string{"SELECT command denied"})
}

func (e *liveEnv) auditWith(q Query, plugins []string) map[string]Finding {
	e.t.Helper()
	return e.auditTarget(q, func(tg *Target) { tg.AllowedPlugins = plugins })
}

// chownUser gives a file to the mysql user.
func chownUser(p string) error {
	u, err := user.Lookup("mysql")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(p, uid, gid)
}

// rootPwQuery logs in as root with a password (after unix_socket is gone).
func rootPwQuery(srv *sandbox.Server, pw string) Query { return userPwQuery(srv, "root", pw) }
