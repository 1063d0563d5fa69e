package integration

import (
	"context"
	"database/sql"
	"encoding/json"

	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// mariadbOnMount makes a datadir in @mysql on the mount, allowed to the
// real mariadbd by a rule, and initializes it.
func mariadbOnMount(t *testing.T, m *mountEnv) sandbox.Options {
	t.Helper()
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb")
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		t.Fatal(err)
	}
	m.aclAdd("ALLOW @mysql * " + bin)
	dataDir := filepath.Join(m.mnt, "mysql", "var", "lib", "mysql")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := sandbox.Options{Dir: filepath.Join(m.dir, "mysqld"), DataDir: dataDir,
		Args: []string{"--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sandbox.Init(ctx, o); err != nil {
		t.Fatal(err)
	}
	return o
}

func init() {
	// The driver logs every connection the crashes break; the test
	// checks the data instead.
	mysql.SetLogger(log.New(io.Discard, "", 0))
}

func startServer(t *testing.T, o sandbox.Options) (*sandbox.Server, *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.Exited() {
			s.Kill()
		}
	})
	if _, err := s.Client(ctx, "CREATE USER IF NOT EXISTS 'w'@'localhost' IDENTIFIED BY 'wpw'; GRANT ALL ON *.* TO 'w'@'localhost'; CREATE DATABASE IF NOT EXISTS crash; CREATE TABLE IF NOT EXISTS crash.t (id BIGINT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB;"); err != nil {
		t.Fatalf("%v\n%s", err, s.ErrorLog())
	}
	db, err := sql.Open("mysql", "w:wpw@unix("+s.Socket+")/crash")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	return s, db
}

// workload inserts rows from 4 connections until stop, recording the ids
// whose COMMIT was acknowledged.
func workload(db *sql.DB, first int64, stop <-chan struct{}) (acked *sync.Map, count *atomic.Int64, done *sync.WaitGroup) {
	acked, count, done = &sync.Map{}, &atomic.Int64{}, &sync.WaitGroup{}
	var next atomic.Int64
	next.Store(first)
	for w := 0; w < 4; w++ {
		done.Add(1)
		go func() {
			defer done.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := next.Add(1)
				if _, err := db.Exec("INSERT INTO t VALUES (?, REPEAT('x', 200))", id); err != nil {
					return // the server went away
				}
				acked.Store(id, true)
				count.Add(1)
			}
		}()
	}
	return acked, count, done
}

func checkAcked(t *testing.T, db *sql.DB, acked *sync.Map) int {
	t.Helper()
	n := 0
	acked.Range(func(k, _ any) bool {
		var got int64
		if err := db.QueryRow("SELECT id FROM t WHERE id = ?", k).Scan(&got); err != nil {
			t.Fatalf("acknowledged id %v lost after the crash: %v", k, err)
		}
		n++
		return true
	})
	return n
}

// TestMariaDBOnMount runs a real mariadbd with its datadir in @mysql on
// the mount, kills it with SIGKILL under a write workload, restarts it and
// checks every acknowledged row; then kills the mysecure daemon under the
// same workload, remounts, restarts the server and checks again.
func TestMariaDBOnMount(t *testing.T) {
	m := newMount(t)
	o := mariadbOnMount(t, m)

	// 1. kill -9 of mariadbd.
	s, db := startServer(t, o)
	stop := make(chan struct{})
	acked, count, done := workload(db, 0, stop)
	waitCount(t, count, 300)
	s.Kill()
	close(stop)
	done.Wait()
	db.Close()
	s, db = startServer(t, o)
	n := checkAcked(t, db, acked)
	t.Logf("server SIGKILL: %d acknowledged rows, all present after recovery", n)

	// The store holds only ciphertext of the datadir.
	scanStore(t, m.store, "ibdata1", "ib_logfile0", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")

	// 2. kill -9 of the mysecure daemon under the workload.
	var st struct{ Pid int }
	mustJSON(t, m.ms(0, "status", "--json"), &st)
	stop = make(chan struct{})
	acked2, count2, done2 := workload(db, 1_000_000, stop)
	waitCount(t, count2, 300)
	syscall.Kill(st.Pid, syscall.SIGKILL)
	// The server fails on its dead datadir; make sure it is gone.
	time.Sleep(500 * time.Millisecond)
	close(stop)
	done2.Wait()
	db.Close()
	s.Kill()
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	s, db = startServer(t, o)
	n1 := checkAcked(t, db, acked)
	n2 := checkAcked(t, db, acked2)
	t.Logf("daemon SIGKILL: %d + %d acknowledged rows, all present after remount and recovery", n1, n2)
	var check string
	rows, err := db.Query("CHECK TABLE t")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, op, typ string
		rows.Scan(&tbl, &op, &typ, &check)
	}
	rows.Close()
	if check != "OK" {
		t.Fatalf("CHECK TABLE after the crashes: %q", check)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestMariaDBSocketInDatadir runs mariadbd with its unix socket in its
// encrypted datadir, as Red Hat style layouts
// do (/var/lib/mysql/mysql.sock), and connects a client through it.
func TestMariaDBSocketInDatadir(t *testing.T) {
	m := newMount(t)
	o := mariadbOnMount(t, m)
	o.Socket = filepath.Join(o.DataDir, "mysql.sock")
	s, db := startServer(t, o)
	if _, err := db.Exec("INSERT INTO t VALUES (1, 'over the socket in the datadir')"); err != nil {
		t.Fatal(err)
	}
	// The command-line client too (another process, another connect).
	out, err := s.Client(context.Background(), "SELECT pad FROM crash.t WHERE id = 1;")
	if err != nil || strings.TrimSpace(out) != "over the socket in the datadir" {
		t.Fatalf("client over %s: %v %q", o.Socket, err, out)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(o.Socket, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		t.Fatalf("socket on the mount: %v mode %o", err, st.Mode)
	}
	// In the store: a socket node under an encrypted name, nothing named
	// in plaintext.
	scanStore(t, m.store, "mysql.sock")
	socks := 0
	filepath.WalkDir(m.store, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSocket != 0 {
			socks++
		}
		return nil
	})
	if socks != 1 {
		t.Fatalf("store holds %d socket nodes, want 1", socks)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// A clean stop removes the socket; a restart binds it again.
	s, _ = startServer(t, o)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

func waitCount(t *testing.T, c *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for c.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("workload reached only %d commits in 60 s", c.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

// TestSeedBackupFlow is the flow of the product mysecure replaces: a
// protected .cnf with the backup user's password and the result file,
// both encrypted into @mysqlbackup, a rule for mariadb-dump only; the
// dump run by hand reads its credentials and writes its output through
// the mount, while cat of either is denied and the store holds only
// ciphertext.
func TestSeedBackupFlow(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
	m := newMount(t)
	o := sandbox.Options{Dir: filepath.Join(m.dir, "srv")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sandbox.Init(ctx, o); err != nil {
		t.Fatal(err)
	}
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := s.Client(ctx, "CREATE USER 'backup'@'localhost' IDENTIFIED BY 'Seed-Pw-4711'; GRANT SELECT, SHOW VIEW, LOCK TABLES, RELOAD, EVENT, TRIGGER ON *.* TO 'backup'@'localhost'; CREATE DATABASE shop; CREATE TABLE shop.cards (n VARCHAR(40)); INSERT INTO shop.cards VALUES ('CARD-4111-MARKER');"); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(m.dir, "home", "dba")
	os.MkdirAll(home, 0o700)
	backupDir := filepath.Join(m.dir, "var", "lib", "mysqlbackup")
	os.MkdirAll(backupDir, 0o750)
	cnf := filepath.Join(home, "protected.cnf")
	dump := filepath.Join(backupDir, "all.sql")
	os.WriteFile(cnf, []byte(fmt.Sprintf("[client]\nuser=backup\npassword=Seed-Pw-4711\nsocket=%s\n[mysqldump]\nresult-file=%s\n", s.Socket, dump)), 0o600)

	m.ms(0, append([]string{"encrypt", "@mysqlbackup", cnf, backupDir}, m.creds()...)...)
	dumpBin, _ := exec.LookPath("mariadb-dump")
	m.aclAdd("ALLOW @mysqlbackup * " + dumpBin)
	m.aclAdd("ALLOW @mysqlbackup *.sql /usr/bin/tail")

	out, err := exec.Command(dumpBin, "--defaults-extra-file="+cnf, "--all-databases", "--single-transaction").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-dump through the mount: %v\n%s", err, out)
	}
	tail, err := exec.Command("/usr/bin/tail", "-c", "200", dump).CombinedOutput()
	if err != nil || !strings.Contains(string(tail), "Dump completed") {
		t.Fatalf("dump trailer: %q %v", tail, err)
	}
	for _, f := range []string{cnf, dump} {
		if out, err := read("/usr/bin/cat", f); err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("cat %s: %q %v", f, out, err)
		}
	}
	scanStore(t, m.store, "Seed-Pw-4711", "CARD-4111-MARKER", "protected.cnf", "all.sql")
}
