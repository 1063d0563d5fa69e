package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// grepTree returns the files under root that contain any of the markers.
func grepTree(t *testing.T, root string, markers ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return nil
		}
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				hits = append(hits, p+": "+m)
			}
		}
		return nil
	})
	return hits
}

// grepGlob returns the files matching pattern that contain any of the
// markers (at least one file must match).
func grepGlob(t *testing.T, pattern string, markers ...string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no file matches %s: %v", pattern, err)
	}
	var hits []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				hits = append(hits, f+": "+m)
			}
		}
	}
	return hits
}

// ariaBefore writes Aria rows before engine mode (a user table, and a
// user with a grant in the mysql.* system tables), checks that they are
// in plaintext in the .MAD files, and returns the files and markers.
func ariaBefore(t *testing.T, h *hardenEnv, defaults []string) (files []string, markers []string) {
	t.Helper()
	const userMark, rowMark = "engariauser_5e2b", "ENGARIA-3d81c6"
	s, err := h.start(h.bin, defaults)
	if err != nil {
		t.Fatalf("start before engine mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := s.Client(ctx, "CREATE TABLE shop.pre (v VARCHAR(40)) ENGINE=Aria; INSERT INTO shop.pre VALUES ('"+rowMark+"');"+
		" CREATE USER '"+userMark+"'@'localhost' IDENTIFIED BY 'Eng-Aria-Pw-1'; GRANT SELECT ON shop.* TO '"+userMark+"'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	files = []string{filepath.Join(h.datadir, "mysql", "*.MAD"), filepath.Join(h.datadir, "shop", "pre.MAD")}
	markers = []string{userMark, rowMark}
	// The baseline: both markers are in plaintext before engine mode.
	var hits []string
	for _, f := range files {
		hits = append(hits, grepGlob(t, f, markers...)...)
	}
	all := strings.Join(hits, "\n")
	for _, want := range []string{filepath.Join("mysql", "global_priv.MAD") + ": " + userMark, filepath.Join("mysql", "db.MAD") + ": " + userMark, filepath.Join("shop", "pre.MAD") + ": " + rowMark} {
		if !strings.Contains(all, want) {
			t.Fatalf("no plaintext %q before engine mode; found:\n%s", want, all)
		}
	}
	return files, markers
}

// ariaEncrypt checks that engine status lists the Aria tables written
// before engine mode, then has 'engine enable' with the server's socket
// rebuild them (no credential: the rebuild alone needs none), and waits
// until status is complete.
func ariaEncrypt(t *testing.T, h *hardenEnv, socket string, flags []string) {
	t.Helper()
	status := append([]string{"engine", "status", "--mysql-socket", socket}, flags...)
	out := h.ms(15, status...)
	for _, want := range []string{"plaintext: Aria mysql.global_priv (not rebuilt", "plaintext: Aria mysql.db (not rebuilt", "plaintext: Aria shop.pre (not rebuilt"} {
		if !strings.Contains(out, want) {
			t.Fatalf("engine status before the Aria rebuild lacks %q:\n%s", want, out)
		}
	}
	enable := append([]string{"engine", "enable", "--mysql-socket", socket}, flags...)
	out = h.ms(0, enable...)
	if !strings.Contains(out, "change:    rebuild the Aria tables still in plaintext") || !strings.Contains(out, "the Aria tables are rebuilt encrypted") {
		t.Fatalf("enable with the server's socket: %s", out)
	}
	if out := h.ms(0, enable...); !strings.Contains(out, "nothing to change") {
		t.Fatalf("enable after the Aria rebuild: %s", out)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		o, err := h.cmd(status...).CombinedOutput()
		if err == nil {
			if strings.Contains(string(o), "plaintext:") || strings.Contains(string(o), "unchecked:") || !strings.Contains(string(o), "Aria table(s) encrypted") {
				t.Fatalf("engine status: %s", o)
			}
			t.Logf("status: %s", o)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine status not complete: %v %s", err, o)
		}
		time.Sleep(2 * time.Second)
	}
}

// TestEngineMariaDB: engine mode on a private copy of mariadbd with a
// plain datadir: rows, redo log, binary log and temporary files are
// written encrypted; the keys open only to the server binary; without
// the mount the server refuses to start; a physical backup round-trips.
func TestEngineMariaDB(t *testing.T) {
	testenv.RequireCommands(t, "mariadb-backup", "mbstream")
	h := newHardenEnv(t)
	cnfDir := filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d")
	state := filepath.Join(h.root, "etc", "mysecure", "engine.json")
	myCnf := filepath.Join(h.root, "etc", "mysql", "my.cnf")
	// The server's option file: binary log on, and the conf.d directory
	// engine mode writes into.
	if err := os.WriteFile(myCnf, []byte("[mysqld]\nlog-bin=mysql-bin\nserver-id=1\nbinlog-format=ROW\n!includedir "+cnfDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := []string{"--defaults-file=" + myCnf}
	flags := []string{"--binary", h.bin, "--cnf-dir", cnfDir, "--state", state, "--harden-state", h.state}
	ariaFiles, ariaMarks := ariaBefore(t, h, defaults)

	out := h.ms(0, append(append([]string{"engine", "enable", "--dry-run"}, flags...), h.creds()...)...)
	if !strings.Contains(out, "dry run: ") || !strings.Contains(out, "ALLOW @protected etc/mysql/mysecure-engine/keys.txt "+h.bin+" --user=mysql") {
		t.Fatalf("dry run: %s", out)
	}
	if _, err := os.Stat(filepath.Join(cnfDir, "99-mysecure-engine.cnf")); err == nil {
		t.Fatal("the dry run wrote the option file")
	}
	out = h.ms(0, append(append([]string{"engine", "enable"}, flags...), h.creds()...)...)
	t.Logf("enable: %s", out)
	key := filepath.Join(h.mnt, "protected", "etc", "mysql", "mysecure-engine", "keys.txt")
	cnf, err := os.ReadFile(filepath.Join(cnfDir, "99-mysecure-engine.cnf"))
	if err != nil || !strings.Contains(string(cnf), "file_key_management_filename = "+key) {
		t.Fatalf("option file: %q %v", cnf, err)
	}
	// A second run changes nothing.
	if out := h.ms(0, append(append([]string{"engine", "enable"}, flags...), h.creds()...)...); !strings.Contains(out, "nothing to change") {
		t.Fatalf("second enable: %s", out)
	}

	// The key file: root's cat and a copy of the server are denied.
	if b, err := exec.Command("cat", key).CombinedOutput(); err == nil || bytes.Count(b, []byte(";")) > 0 {
		t.Fatalf("cat read the engine keys (%v): %d bytes", err, len(b))
	}
	if s, err := h.start(filepath.Join(h.root, "copy", "mariadbd"), defaults); err == nil {
		s.Stop()
		t.Fatal("a copy of mariadbd started with the engine keys")
	} else if !strings.Contains(err.Error(), "file_key_management") && !strings.Contains(err.Error(), "Permission denied") {
		t.Logf("copy refused: %v", err)
	}

	s, err := h.start(h.bin, defaults)
	if err != nil {
		t.Fatalf("start with engine mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const rowMark, tmpMark = "ENGROW-7f3a9c", "ENGTMP-51be02"
	if out, err := s.Client(ctx, "INSERT INTO shop.t VALUES ('"+rowMark+"'); CREATE TABLE shop.big (id INT PRIMARY KEY, v TEXT); INSERT INTO shop.big SELECT seq, CONCAT('"+tmpMark+"', REPEAT(MD5(seq), 20)) FROM shop.seq_1_to_20000;"+
		" SET SESSION max_heap_table_size=16384, tmp_table_size=16384, sort_buffer_size=32768; SELECT COUNT(*) FROM (SELECT v, COUNT(*) FROM shop.big GROUP BY v ORDER BY v DESC) x;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// engine status: the Aria tables written before engine mode are
	// listed until 'engine enable' rebuilds them; every tablespace is
	// encrypted once the threads are done.
	ariaEncrypt(t, h, s.Socket, flags)
	if out, err := s.Client(ctx, "FLUSH BINARY LOGS; FLUSH TABLES;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pw := filepath.Join(h.dir, "pw")
	os.WriteFile(pw, []byte("Eng-Bk-Pw-1"), 0o600)
	if out, err := s.Client(ctx, "CREATE USER 'bk'@'localhost' IDENTIFIED BY 'Eng-Bk-Pw-1'; GRANT ALL ON *.* TO 'bk'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	h.ms(0, "backup", "credentials", "set", "--user", "bk", "--mysql-socket", s.Socket, "--password-file", pw)
	os.Remove(pw)
	before := dbState(t, s)
	if before["table shop.big"] == "" {
		t.Fatalf("state: %v", before)
	}
	// A physical backup through the daemon: mariabackup reads the keys by
	// its rule and the plugin options from the server.
	h.ms(0, "backup", "--type", "physical")

	// Restart: the data is read back with the keys.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s, err = h.start(h.bin, defaults); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if out, err := s.Client(ctx, "SELECT COUNT(*) FROM shop.t WHERE v='"+rowMark+"'"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("after restart: %q %v", out, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// No marker row in any file of the datadir (tables, redo log, undo,
	// binary logs) or the server's tmpdir.
	if hits := grepTree(t, h.datadir, rowMark, tmpMark); len(hits) > 0 {
		t.Fatalf("plaintext in the datadir: %v", hits)
	}
	if hits := grepTree(t, filepath.Join(h.dir, "srv"), rowMark, tmpMark); len(hits) > 0 {
		t.Fatalf("plaintext in the server's directory: %v", hits)
	}
	// The Aria tables written before engine mode were rebuilt encrypted:
	// their rows are in none of their files. (The Aria log is not
	// encrypted by MariaDB; see docs/engine.md.)
	for _, f := range ariaFiles {
		if hits := grepGlob(t, f, ariaMarks...); len(hits) > 0 {
			t.Fatalf("plaintext in Aria tables after engine enable: %v", hits)
		}
	}
	// A row written before engine mode may stay in pages InnoDB no
	// longer uses; say where.
	if hits := grepTree(t, h.datadir, "before-harden"); len(hits) > 0 {
		t.Logf("a row written before engine mode is still on disk in: %v", hits)
	}

	// Restore: prepare (mariabackup needs the keys) and copy back, then a
	// server with the same engine options starts on it.
	ids := h.catalogIDs(t)
	if len(ids) != 1 {
		t.Fatalf("catalog: %v", ids)
	}
	target := filepath.Join(h.dir, "prepared")
	datadir := filepath.Join(h.dir, "srv2", "data")
	h.ms(0, "restore", ids[0], "--target", target, "--copy-back", datadir)
	if hits := grepTree(t, datadir, rowMark, tmpMark); len(hits) > 0 {
		t.Fatalf("plaintext in the restored datadir: %v", hits)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel2()
	srv2, err := sandbox.Start(ctx2, sandbox.Options{Dir: filepath.Join(h.dir, "srv2"), DataDir: datadir, Binary: h.bin, Defaults: defaults})
	if err != nil {
		t.Fatalf("a server on the restored datadir: %v", err)
	}
	sameState(t, "a server on the restored datadir", before, dbState(t, srv2))
	srv2.Stop()

	// Without the mount the server refuses to start: no plaintext
	// fallback.
	h.ms(0, "umount")
	if s, err := h.start(h.bin, defaults); err == nil {
		s.Stop()
		t.Fatal("the server started without its keys")
	} else {
		t.Logf("without the mount: %v", lastLines(err.Error(), 4))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestEngineHardened: engine mode on a hardened server: the key plugin is
// added to the guard's allow-list (a move session), the key rule names
// the real binary in the mount; the server starts through the guard, a
// --skip-grant-tables start through the guard still asks for passwords,
// and a copy of mariadbd cannot read the keys.
func TestEngineHardened(t *testing.T) {
	h := newHardenEnv(t)
	wrapper := h.bin + "-guard"
	cnfDir := filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d")
	myCnf := filepath.Join(h.root, "etc", "mysql", "my.cnf")
	if err := os.WriteFile(myCnf, []byte("[mysqld]\n!includedir "+cnfDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := []string{"--defaults-file=" + myCnf}
	h.harden(0)
	flags := []string{"--binary", h.bin, "--cnf-dir", cnfDir, "--state", filepath.Join(h.root, "etc", "mysecure", "engine.json"), "--harden-state", h.state, "--allow-backup-tool=none"}
	// Harden first, then engine mode: the key plugin joins the guard's
	// allow-list and the rule names the real binary in the mount.
	out := h.ms(0, append(append([]string{"engine", "enable"}, flags...), h.creds()...)...)
	real := filepath.Join(h.mnt, "protected", h.bin)
	if !strings.Contains(out, "ALLOW @protected etc/mysql/mysecure-engine/keys.txt "+real+" --user=mysql") || !strings.Contains(out, "require the key plugin file_key_management and pin engine mode's settings") {
		t.Fatalf("enable on a hardened server: %s", out)
	}
	// Enabled with --allow-backup-tool=none (mariadb-backup is on PATH):
	// status and a later enable without the flag plan no backup rule.
	noTool := flags[:len(flags)-1]
	if out := h.ms(0, append([]string{"engine", "status"}, noTool...)...); strings.Contains(out, "drift") || strings.Contains(out, "mariadb-backup") {
		t.Fatalf("status after enable --allow-backup-tool=none: %s", out)
	}
	if out := h.ms(0, append([]string{"engine", "enable"}, noTool...)...); !strings.Contains(out, "nothing to change") {
		t.Fatalf("enable again without --allow-backup-tool: %s", out)
	}
	s, err := h.start(wrapper, defaults)
	if err != nil {
		t.Fatalf("start through the guard with engine mode: %v", err)
	}
	if err := login(s, "app", "App-Pw-1"); err != nil {
		t.Fatalf("app login: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := s.Client(ctx, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME='file_key_management'"); err != nil || strings.TrimSpace(out) != "ACTIVE" {
		t.Fatalf("key plugin: %q %v", out, err)
	}
	s.Stop()
	// The guard pins engine mode: a start that turns encryption off, or
	// points the key plugin at other keys, is refused.
	os.WriteFile(filepath.Join(h.dir, "forged-keys.txt"), []byte("1;"+strings.Repeat("00", 32)+"\n2;"+strings.Repeat("11", 32)+"\n"), 0o644)
	for _, bad := range [][]string{{"--skip-innodb-encrypt-tables"}, {"--innodb-encrypt-tables=OFF"}, {"--loose-file-key-management-filename=" + filepath.Join(h.dir, "forged-keys.txt")},
		{"--skip-encrypt-binlog"}, {"--plugin-load=auth_ed25519"}} {
		var stderr bytes.Buffer
		s, err := sandbox.Start(ctx, sandbox.Options{Dir: filepath.Join(h.dir, "srv"), DataDir: h.datadir, Binary: wrapper, Defaults: defaults, Args: bad, Stderr: &stderr})
		if err == nil {
			s.Stop()
			t.Fatalf("the guard started the server with %v", bad)
		}
		if !strings.Contains(stderr.String(), "mysecure-guard: error: refused") {
			t.Errorf("%v: not refused by the guard: %s", bad, stderr.String())
		}
	}
	// --skip-grant-tables through the guard: removed; passwords still asked.
	s, err = h.start(wrapper, defaults, "--skip-grant-tables")
	if err != nil {
		t.Fatalf("start through the guard: %v", err)
	}
	if err := login(s, "intruder", ""); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("a passwordless login was not refused: %v", err)
	}
	s.Stop()
	// A copy of the binary: no keys, no start.
	if s, err := h.start(filepath.Join(h.root, "copy", "mariadbd"), defaults, "--skip-grant-tables"); err == nil {
		s.Stop()
		t.Fatal("a copy of mariadbd started with the engine keys")
	}
	if b, err := exec.Command("cat", filepath.Join(h.mnt, "protected", "etc", "mysql", "mysecure-engine", "keys.txt")).CombinedOutput(); err == nil {
		t.Fatalf("cat read the keys: %d bytes", len(b))
	}

	// engine disable on the hardened server: the guard's pins follow each
	// run (a start with the decrypting option file, then one without the
	// key plugin, both through the guard).
	if s, err = h.start(wrapper, defaults); err != nil {
		t.Fatal(err)
	}
	srv := append([]string{"--mysql-socket", s.Socket}, noTool...)
	h.ms(0, append(append([]string{"engine", "disable"}, srv...), h.creds()...)...)
	s.Stop()
	if s, err = h.start(wrapper, defaults); err != nil {
		t.Fatalf("start through the guard with the decrypting option file: %v", err)
	}
	srv[1] = s.Socket
	h.ms(0, append(append([]string{"engine", "disable"}, srv...), h.creds()...)...)
	s.Stop()
	if s, err = h.start(wrapper, defaults); err != nil {
		t.Fatalf("start through the guard after engine disable: %v", err)
	}
	if out, err := s.Client(ctx, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME='file_key_management'; SELECT v FROM shop.t"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "0\n") {
		t.Fatalf("after engine disable: %q %v", out, err)
	}
	s.Stop()
	// The key plugin is no longer allowed by the guard.
	var stderr bytes.Buffer
	if s, err := sandbox.Start(ctx, sandbox.Options{Dir: filepath.Join(h.dir, "srv"), DataDir: h.datadir, Binary: wrapper, Defaults: defaults,
		Args: []string{"--plugin-load-add=file_key_management"}, Stderr: &stderr}); err == nil {
		s.Stop()
		t.Fatal("the guard loaded the key plugin after engine disable")
	}
}

// TestEngineDisable: engine mode is turned off online. Run 1 decrypts
// (the tablespaces by the background threads, the Aria tables by a
// rebuild) and keeps the key plugin; a second run before the restart and
// one with encrypted binary logs left are refused; after the restart and
// a purge, run 2 removes the option file. The server then starts with
// the mount down (no key plugin, no key), reads every row, and the
// marker rows are now in plaintext in their table files: the decryption
// happened. (What the redo log and the binary logs hold is not asserted:
// old redo blocks and purged binary logs are not rewritten.)
func TestEngineDisable(t *testing.T) {
	h := newHardenEnv(t)
	cnfDir := filepath.Join(h.root, "etc", "mysql", "mariadb.conf.d")
	myCnf := filepath.Join(h.root, "etc", "mysql", "my.cnf")
	if err := os.WriteFile(myCnf, []byte("[mysqld]\nlog-bin=mysql-bin\nserver-id=1\nbinlog-format=ROW\n!includedir "+cnfDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := []string{"--defaults-file=" + myCnf}
	flags := []string{"--binary", h.bin, "--cnf-dir", cnfDir, "--state", filepath.Join(h.root, "etc", "mysecure", "engine.json"), "--harden-state", h.state}
	h.ms(0, append(append([]string{"engine", "enable"}, flags...), h.creds()...)...)
	cnf := filepath.Join(cnfDir, "99-mysecure-engine.cnf")

	s, err := h.start(h.bin, defaults)
	if err != nil {
		t.Fatalf("start with engine mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const rowMark, ariaMark = "DISROW-4c1e77", "DISARIA-9b2d05"
	if out, err := s.Client(ctx, "INSERT INTO shop.t VALUES ('"+rowMark+"'); CREATE TABLE shop.a (v VARCHAR(40)) ENGINE=Aria TRANSACTIONAL=0; INSERT INTO shop.a VALUES ('"+ariaMark+"');"+
		" CREATE TABLE shop.big (id INT PRIMARY KEY, v TEXT); INSERT INTO shop.big SELECT seq, REPEAT(MD5(seq), 20) FROM shop.seq_1_to_5000;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	srv := append([]string{"--mysql-socket", s.Socket}, flags...)
	// The mysql.* Aria tables of the datadir initialized before engine
	// mode are rebuilt encrypted by a second 'engine enable'.
	h.ms(0, append([]string{"engine", "enable"}, srv...)...)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		o, err := h.cmd(append([]string{"engine", "status"}, srv...)...).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine status not complete: %v %s", err, o)
		}
		time.Sleep(2 * time.Second)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// The baseline: encrypted, no marker in the datadir. (The Aria table
	// is not transactional: MariaDB writes rows of transactional Aria
	// tables to the Aria log in plaintext, see docs/engine.md.)
	if hits := grepTree(t, h.datadir, rowMark, ariaMark); len(hits) > 0 {
		t.Fatalf("plaintext in the datadir in engine mode: %v", hits)
	}
	if s, err = h.start(h.bin, defaults); err != nil {
		t.Fatal(err)
	}
	srv[1] = s.Socket
	enabled, _ := os.ReadFile(cnf)

	// Without a server: a usage error.
	h.ms(2, append([]string{"engine", "disable"}, flags...)...)
	out := h.ms(0, append([]string{"engine", "disable", "--dry-run"}, srv...)...)
	if !strings.Contains(out, "run 1 of 2") || !strings.Contains(out, "dry run: ") {
		t.Fatalf("dry run: %s", out)
	}
	if b, _ := os.ReadFile(cnf); !bytes.Equal(b, enabled) {
		t.Fatal("the dry run changed the option file")
	}
	// A session holds a lock on an Aria table and lock waits time out
	// after 2 s: the rebuild fails and the run is rolled back (encryption
	// back on, the option file as it was).
	locker := exec.Command("mariadb", "--socket="+s.Socket, "--batch", "--skip-column-names", "--unbuffered")
	lockIn, _ := locker.StdinPipe()
	lockOut, _ := locker.StdoutPipe()
	if err := locker.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(lockIn, "LOCK TABLES shop.a READ; SELECT 'locked';\n")
	if line, err := bufio.NewReader(lockOut).ReadString('\n'); err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock: %q %v", line, err)
	}
	if o, err := s.Client(ctx, "SET GLOBAL lock_wait_timeout = 2"); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	out = h.ms(1, append([]string{"engine", "disable"}, srv...)...)
	lockIn.Close()
	locker.Wait()
	if !strings.Contains(out, "failed to rebuild the Aria table `shop`.`a`") || !strings.Contains(out, "undone:    SET GLOBAL innodb_encrypt_tables = OFF") {
		t.Fatalf("a failed run 1: %s", out)
	}
	if b, _ := os.ReadFile(cnf); !bytes.Equal(b, enabled) {
		t.Fatal("a rolled-back run changed the option file")
	}
	if o, err := s.Client(ctx, "SET GLOBAL lock_wait_timeout = DEFAULT; SELECT @@innodb_encrypt_tables, @@aria_encrypt_tables, @@encrypt_tmp_disk_tables"); err != nil ||
		strings.Join(strings.Fields(o), " ") != "FORCE 1 1" {
		t.Fatalf("after the rollback: %q %v", o, err)
	}
	out = h.ms(0, append([]string{"engine", "disable"}, srv...)...)
	t.Logf("run 1: %s", out)
	if b, err := os.ReadFile(cnf); err != nil || !strings.Contains(string(b), "innodb_encrypt_log = OFF") || !strings.Contains(string(b), "file_key_management = FORCE_PLUS_PERMANENT") {
		t.Fatalf("option file after run 1: %q %v", b, err)
	}
	if o, err := s.Client(ctx, "SELECT COUNT(*) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE ENCRYPTION_SCHEME <> 0"); err != nil || strings.TrimSpace(o) != "0" {
		t.Fatalf("encrypted tablespaces after run 1: %q %v", o, err)
	}
	// Not restarted yet: refused, nothing changed.
	out = h.ms(2, append([]string{"engine", "disable"}, srv...)...)
	if !strings.Contains(out, "not restarted") {
		t.Fatalf("run 2 before the restart: %s", out)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s, err = h.start(h.bin, defaults); err != nil {
		t.Fatalf("restart with the decrypting option file: %v", err)
	}
	srv[1] = s.Socket
	// The binary logs written in engine mode are still encrypted.
	out = h.ms(2, append([]string{"engine", "disable"}, srv...)...)
	if !strings.Contains(out, "binary logs still encrypted") || !strings.Contains(out, "PURGE BINARY LOGS TO") {
		t.Fatalf("run 2 with encrypted binary logs: %s", out)
	}
	if _, err := os.Stat(cnf); err != nil {
		t.Fatal("a refused run changed the option file")
	}
	cur, err := s.Client(ctx, "SELECT @@log_bin_basename")
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Client(ctx, "SHOW MASTER STATUS")
	if err != nil || !strings.HasPrefix(st, filepath.Base(strings.TrimSpace(cur))) {
		t.Fatalf("master status: %q %v", st, err)
	}
	if o, err := s.Client(ctx, "PURGE BINARY LOGS TO '"+strings.Fields(st)[0]+"'"); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	out = h.ms(0, append([]string{"engine", "disable"}, srv...)...)
	t.Logf("run 2: %s", out)
	if _, err := os.Stat(cnf); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the option file is still there: %v", err)
	}
	if out := h.ms(0, append([]string{"engine", "disable"}, srv...)...); !strings.Contains(out, "engine mode is off") {
		t.Fatalf("a third run: %s", out)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// The key is not needed any more: the mount goes down, the server
	// starts without the key plugin and reads everything.
	h.ms(0, "umount")
	if s, err = h.start(h.bin, defaults); err != nil {
		t.Fatalf("start after engine disable, without the mount: %v", err)
	}
	if o, err := s.Client(ctx, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME='file_key_management'; SELECT v FROM shop.t WHERE v='"+rowMark+"';"+
		" SELECT v FROM shop.a; SELECT COUNT(*) FROM shop.big; SELECT COUNT(*) > 0 FROM mysql.global_priv;"); err != nil ||
		strings.Join(strings.Fields(o), " ") != "0 "+rowMark+" "+ariaMark+" 5000 1" {
		t.Fatalf("after engine disable: %q %v", o, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	hits := strings.Join(grepTree(t, h.datadir, rowMark, ariaMark), "\n")
	for _, want := range []string{filepath.Join("shop", "t.ibd") + ": " + rowMark, filepath.Join("shop", "a.MAD") + ": " + ariaMark} {
		if !strings.Contains(hits, want) {
			t.Errorf("no plaintext %q after engine disable; found:\n%s", want, hits)
		}
	}
}
