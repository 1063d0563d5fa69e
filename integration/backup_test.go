package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// bkEnv is a volume (no daemon) next to a private MariaDB server loaded
// with data that breaks naive tools, and stored backup credentials for a
// user whose password is unique to the test.
type bkEnv struct {
	*env
	srv      *sandbox.Server
	opts     sandbox.Options
	password string
	vars     []string
}

const bkUser = "bk"

func newBackupEnv(t *testing.T, extraVars ...string) *bkEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump", "mariabackup", "mbstream")
	e := newEnv(t)
	os.Chmod(e.dir, 0o755)
	os.Chmod(filepath.Dir(e.dir), 0o755)
	b := &bkEnv{env: e, opts: sandbox.Options{Dir: filepath.Join(e.dir, "srv"),
		Args: []string{"--log-bin=mysql-bin", "--server-id=1", "--event-scheduler=OFF"}}}
	b.srv = startSandbox(t, b.opts)
	fixture, err := os.ReadFile("testdata/tricky.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := b.srv.Client(ctx, string(fixture)); err != nil {
		t.Fatalf("loading the fixture: %v\n%s", err, out)
	}
	var r [6]byte
	rand.Read(r[:])
	b.password = `Pw'"#;\ ü🔐-` + hex.EncodeToString(r[:])
	lit := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(b.password)
	// Not in the binary log: the test scans every file for the password.
	if out, err := b.srv.Client(ctx, fmt.Sprintf("SET sql_log_bin=0; CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'localhost';", bkUser, lit, bkUser)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b.vars = append([]string{"MYSECURE_STORE=" + e.store, "MYSECURE_SOCKET=" + filepath.Join(e.dir, "no-daemon.sock"),
		"MYSECURE_JOB_SOCKET=" + filepath.Join(e.dir, "no-daemon-jobs.sock"), "MYSECURE_STATE_DIR=" + e.state}, extraVars...)
	b.setCredentials(t, "default", b.password)
	return b
}

func startSandbox(t *testing.T, o sandbox.Options) *sandbox.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(datadirOf(o), "mysql")); err != nil {
		if err := sandbox.Init(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.Exited() {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		}
	})
	return s
}

func datadirOf(o sandbox.Options) string {
	if o.DataDir != "" {
		return o.DataDir
	}
	return filepath.Join(o.Dir, "data")
}

// setCredentials stores credentials through a password file that is
// removed right after (the test scans every file for the password).
func (b *bkEnv) setCredentials(t *testing.T, name, password string) {
	t.Helper()
	b.setCredentialsFor(t, name, bkUser, password)
}

// setCredentialsFor stores credentials name for another MySQL user.
func (b *bkEnv) setCredentialsFor(t *testing.T, name, user, password string) {
	t.Helper()
	pw := filepath.Join(b.dir, "pw-"+name)
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(pw)
	b.ms(t, 0, "backup", "credentials", "set", "--name", name, "--user", user, "--mysql-socket", b.srv.Socket, "--password-file", pw)
}

// ms runs mysecure locally (with the volume credential) and checks the
// exit code; it returns stdout and stderr.
func (b *bkEnv) ms(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	return b.msArgs(t, want, append(args, b.creds...))
}

// msPlain runs a command that takes no volume credential.
func (b *bkEnv) msPlain(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	return b.msArgs(t, want, args)
}

func (b *bkEnv) msArgs(t *testing.T, want int, args []string) (string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), b.vars...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("mysecure %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

type catalogEntry struct {
	ID          string   `json:"id"`
	Type        string   `json:"type"`
	Databases   []string `json:"databases"`
	PlainBytes  int64    `json:"plain_bytes"`
	PlainSHA256 string   `json:"plain_sha256"`
	Trailer     string   `json:"trailer"`
	StorePath   string   `json:"store_path"`
	Binlog      *struct {
		File     string `json:"file"`
		Position uint64 `json:"position"`
		GTID     string `json:"gtid"`
	} `json:"binlog"`
	Stream *struct {
		Files int `json:"files"`
	} `json:"stream"`
}

func (b *bkEnv) catalog(t *testing.T) []catalogEntry {
	t.Helper()
	out, _ := b.ms(t, 0, "backup", "list", "--json")
	var res struct {
		Backups []catalogEntry    `json:"backups"`
		Broken  map[string]string `json:"broken"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("backup list --json: %v\n%s", err, out)
	}
	if len(res.Broken) > 0 {
		t.Fatalf("broken backups in the catalog: %v", res.Broken)
	}
	return res.Backups
}

func ids(c []catalogEntry) string {
	var s []string
	for _, e := range c {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

// newest runs a backup and returns its catalog entry.
func (b *bkEnv) backup(t *testing.T, args ...string) catalogEntry {
	t.Helper()
	before := b.catalog(t)
	b.ms(t, 0, append([]string{"backup"}, args...)...)
	after := b.catalog(t)
	if len(after) != len(before)+1 {
		t.Fatalf("catalog went from %d to %d backups", len(before), len(after))
	}
	known := map[string]bool{}
	for _, e := range before {
		known[e.ID] = true
	}
	for _, e := range after {
		if !known[e.ID] {
			return e
		}
	}
	t.Fatal("new backup not found in the catalog")
	return catalogEntry{}
}

// dbState describes every table (CHECKSUM TABLE), routine, view, trigger
// and event of the fixture's databases.
func dbState(t *testing.T, s *sandbox.Server) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q := func(sql string) [][]string {
		out, err := s.Client(ctx, sql)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if l != "" {
				rows = append(rows, strings.Split(l, "\t"))
			}
		}
		return rows
	}
	const dbs = "('shop','crm-2')"
	st := map[string]string{}
	for _, r := range q("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA IN " + dbs) {
		name := "`" + strings.ReplaceAll(r[0], "`", "``") + "`.`" + strings.ReplaceAll(r[1], "`", "``") + "`"
		for _, c := range q("CHECKSUM TABLE " + name + " EXTENDED") {
			st["table "+r[0]+"."+r[1]] = c[1]
		}
	}
	for _, r := range q("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN " + dbs) {
		st["routine "+r[0]+"."+r[1]] = r[2] + " " + r[3]
	}
	for _, r := range q("SELECT TABLE_SCHEMA, TABLE_NAME, MD5(VIEW_DEFINITION) FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN " + dbs) {
		st["view "+r[0]+"."+r[1]] = r[2]
	}
	for _, r := range q("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, MD5(ACTION_STATEMENT), EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN " + dbs) {
		st["trigger "+r[0]+"."+r[1]] = r[2] + " " + r[3]
	}
	for _, r := range q("SELECT EVENT_SCHEMA, EVENT_NAME, MD5(EVENT_DEFINITION), INTERVAL_VALUE, INTERVAL_FIELD FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN " + dbs) {
		st["event "+r[0]+"."+r[1]] = strings.Join(r[2:], " ")
	}
	return st
}

func checkFixtureState(t *testing.T, st map[string]string) {
	t.Helper()
	count := map[string]int{}
	for k := range st {
		kind, _, _ := strings.Cut(k, " ")
		count[kind]++
	}
	want := map[string]int{"table": 6, "routine": 2, "view": 2, "trigger": 1, "event": 1}
	for k, n := range want {
		if count[k] != n {
			t.Fatalf("fixture has %d %ss, want %d: %v", count[k], k, n, st)
		}
	}
}

func sameState(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q, want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %q", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// procWatch records any process whose command line or environment holds
// one of the secrets, for as long as it runs.
type procWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	hits []string
	seen map[string]bool
}

func watchProcs(secrets ...string) *procWatch {
	w := &procWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			pids, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range pids {
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile(filepath.Join(p, f))
					if err != nil {
						continue
					}
					if f == "cmdline" {
						w.mu.Lock()
						w.seen[string(bytes.SplitN(b, []byte{0}, 2)[0])] = true
						w.mu.Unlock()
					}
					for _, s := range secrets {
						if bytes.Contains(b, []byte(s)) {
							w.mu.Lock()
							w.hits = append(w.hits, p+"/"+f+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
							w.mu.Unlock()
						}
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

// finish stops watching; it fails on any hit, and unless the watch saw a
// process whose argv[0] contains each of mustSee (proof that it looked
// while the tools ran).
func (w *procWatch) finish(t *testing.T, mustSee ...string) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.hits) > 0 {
		t.Fatalf("secret found in /proc:\n%s", strings.Join(w.hits, "\n"))
	}
	for _, m := range mustSee {
		found := false
		for s := range w.seen {
			if strings.Contains(s, m) {
				found = true
			}
		}
		if !found {
			t.Fatalf("the /proc watch never saw %s running: it proves nothing", m)
		}
	}
}

// scanFiles fails if a regular file under root (FIFOs and sockets are
// skipped) holds a secret.
func scanFiles(t *testing.T, root string, secrets ...string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 256<<20 {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("secret %q found in %s", s[:min(len(s), 12)]+"...", p)
			}
		}
		return nil
	})
}

// sha256("1") as the fixture's big table stores it: plaintext of the data.
const bigRow1 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"

func TestBackupLogicalRestore(t *testing.T) {
	b := newBackupEnv(t)
	before := dbState(t, b.srv)
	checkFixtureState(t, before)

	w := watchProcs(b.password)
	m := b.backup(t, "--databases", "shop,crm-2")
	if m.Type != "logical" || strings.Join(m.Databases, ",") != "shop,crm-2" || len(m.PlainSHA256) != 64 {
		t.Fatalf("manifest: %+v", m)
	}
	if !strings.HasPrefix(m.Trailer, "-- Dump completed") {
		t.Fatalf("manifest trailer %q", m.Trailer)
	}
	if m.Binlog == nil || !strings.HasPrefix(m.Binlog.File, "mysql-bin.") || m.Binlog.Position == 0 || m.Binlog.GTID == "" {
		t.Fatalf("binlog position not recorded: %+v", m.Binlog)
	}
	out, _ := b.ms(t, 0, "backup", "verify", m.ID)
	if !strings.Contains(out, m.ID+" ok") {
		t.Fatalf("verify: %s", out)
	}

	ctx := context.Background()
	if out, err := b.srv.Client(ctx, "DROP DATABASE shop; DROP DATABASE `crm-2`;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	b.ms(t, 0, "restore", m.ID)
	sameState(t, "state after logical restore", before, dbState(t, b.srv))
	if out, err := b.srv.Client(ctx, "SET NAMES utf8mb4; SELECT shop.twice(21); SELECT s FROM shop.texts WHERE id=1;"); err != nil || !strings.Contains(out, "42") || !strings.Contains(out, "🔐😀 and ünïcødé") {
		t.Fatalf("after restore: %q %v", out, err)
	}

	// One database into another name, next to the original.
	one := b.backup(t, "--databases", "shop", "--level", "9")
	b.ms(t, 0, "restore", one.ID, "--rename-to", "shop_copy")
	out, err := b.srv.Client(ctx, "CHECKSUM TABLE shop.big, shop_copy.big, shop.texts, shop_copy.texts EXTENDED; SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='shop_copy';")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sum := func(i int) string { return strings.Split(lines[i], "\t")[1] }
	if len(lines) != 5 || sum(0) != sum(1) || sum(2) != sum(3) || lines[4] != "2" {
		t.Fatalf("rename restore: %q", out)
	}
	w.finish(t, "mariadb-dump", "mariadb")

	// No password or data in the store, logs or temp dirs.
	scanStore(t, b.store, b.password, "MARKER-emoji", bigRow1, "CREATE TABLE")
	scanFiles(t, b.dir, b.password)
	scanFiles(t, os.TempDir(), b.password)
}

// TestRestorePrivileges: a restore with credentials that lack privileges
// stops before it writes anything, naming what is missing; the restore
// user docs/backup.md documents is enough (issue 15 item 5).
func TestRestorePrivileges(t *testing.T) {
	b := newBackupEnv(t)
	ctx := context.Background()
	// The backup user with the grants docs/backup.md gives it, and the
	// restore user docs/backup.md documents for --rename-to shop_copy.
	if out, err := b.srv.Client(ctx, `SET sql_log_bin=0;
CREATE USER 'bkonly'@'localhost' IDENTIFIED BY 'bkonly-pw';
GRANT SELECT, SHOW VIEW, LOCK TABLES, EVENT, TRIGGER, RELOAD, BINLOG MONITOR ON *.* TO 'bkonly'@'localhost';
CREATE USER 'restore'@'localhost' IDENTIFIED BY 'restore-pw';
GRANT SELECT, INSERT, CREATE, DROP, ALTER, LOCK TABLES, CREATE VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE, EVENT ON `+"`shop\\_copy`"+`.* TO 'restore'@'localhost';
CREATE USER 'nodefiner'@'localhost' IDENTIFIED BY 'nodefiner-pw';
GRANT SELECT, INSERT, CREATE, DROP, ALTER, LOCK TABLES, CREATE VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE, EVENT ON `+"`shop\\_copy`"+`.* TO 'nodefiner'@'localhost';
GRANT SET USER, SUPER ON *.* TO 'restore'@'localhost';`); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b.setCredentialsFor(t, "bkonly", "bkonly", "bkonly-pw")
	b.setCredentialsFor(t, "restore", "restore", "restore-pw")
	b.setCredentialsFor(t, "nodefiner", "nodefiner", "nodefiner-pw")
	one := b.backup(t, "--databases", "shop", "--credentials", "bkonly")
	exists := func() string {
		t.Helper()
		out, err := b.srv.Client(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='shop_copy';")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	_, errOut := b.ms(t, 11, "restore", one.ID, "--rename-to", "shop_copy")
	want := "restore: the MySQL account bkonly@localhost lacks INSERT, CREATE, DROP, ALTER, CREATE VIEW, CREATE ROUTINE, ALTER ROUTINE ON `shop_copy`.*; nothing was restored"
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, want+"\nmysecure: hint: grant what is missing") {
		t.Fatalf("stderr:\n%s\nwant %q and a hint line", errOut, want)
	}
	if got := exists(); got != "0" {
		t.Fatalf("a refused restore created shop_copy (%s)", got)
	}

	// Privileges on the database but not SUPER (binary logging is on, and
	// the fixture's triggers and routines are root's): refused part way,
	// with the same hint.
	_, errOut = b.ms(t, 11, "restore", one.ID, "--rename-to", "shop_copy", "--credentials", "nodefiner")
	if !strings.Contains(errOut, "SUPER") || !strings.Contains(errOut, "hint: grant what is missing") {
		t.Fatalf("stderr:\n%s", errOut)
	}
	if out, err := b.srv.Client(ctx, "DROP DATABASE shop_copy;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	b.ms(t, 0, "restore", one.ID, "--rename-to", "shop_copy", "--credentials", "restore")
	out, err := b.srv.Client(ctx, "CHECKSUM TABLE shop.big, shop_copy.big EXTENDED; SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='shop_copy';")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || strings.Split(lines[0], "\t")[1] != strings.Split(lines[1], "\t")[1] || lines[2] != "2" {
		t.Fatalf("restore as the restore user: %q %v", out, err)
	}
}

func TestBackupPhysicalRestore(t *testing.T) {
	b := newBackupEnv(t)
	before := dbState(t, b.srv)
	checkFixtureState(t, before)
	w := watchProcs(b.password)
	m := b.backup(t, "--type", "physical")
	if m.Type != "physical" || m.Stream == nil || m.Stream.Files < 10 {
		t.Fatalf("manifest: %+v", m)
	}
	if m.Binlog == nil || !strings.HasPrefix(m.Binlog.File, "mysql-bin.") {
		t.Fatalf("binlog position not recorded: %+v", m.Binlog)
	}
	b.ms(t, 0, "backup", "verify", "--all")
	w.finish(t, "mariabackup")

	target := filepath.Join(b.dir, "prepared")
	datadir := filepath.Join(b.dir, "srv2", "data")
	b.ms(t, 0, "restore", m.ID, "--target", target, "--copy-back", datadir)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(datadir, "ibdata1"), &st); err != nil {
		t.Fatalf("copy-back: %v", err)
	}
	srv2 := startSandbox(t, sandbox.Options{Dir: filepath.Join(b.dir, "srv2"), DataDir: datadir})
	sameState(t, "state of a server on the restored datadir", before, dbState(t, srv2))

	// Offline on "another machine": only mysecure.conf and the backup's
	// directory, copied; no daemon, no catalog.
	other := filepath.Join(b.dir, "other")
	os.MkdirAll(filepath.Join(other, "store"), 0o700)
	copyFile(t, filepath.Join(b.store, "mysecure.conf"), filepath.Join(other, "store", "mysecure.conf"), 0o600)
	if out, err := exec.Command("cp", "-a", m.StorePath, filepath.Join(other, "backup")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	saved := b.vars
	b.vars = append(append([]string(nil), saved...), "MYSECURE_STORE="+filepath.Join(other, "store"))
	b.ms(t, 0, "restore", "--from-dir", filepath.Join(other, "backup"), "--target", filepath.Join(other, "prepared"), "--local")
	b.vars = saved
	cp, err := os.ReadFile(filepath.Join(other, "prepared", "xtrabackup_checkpoints"))
	if err != nil || !(strings.Contains(string(cp), "log-applied") || strings.Contains(string(cp), "full-prepared")) {
		t.Fatalf("offline restore: %q %v", cp, err)
	}
	os.RemoveAll(filepath.Join(other, "prepared"))

	// The target must be empty: nothing is overwritten.
	_, errOut := b.ms(t, 6, "restore", m.ID, "--target", target)
	if !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore into a non-empty target: %s", errOut)
	}
	scanStore(t, b.store, b.password, "MARKER-emoji", bigRow1)
	scanFiles(t, b.dir, b.password)
}
