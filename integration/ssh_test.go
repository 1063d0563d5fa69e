package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sshclient"
	"github.com/mysecure/mysecure/internal/testenv"
)

// sshd is an OpenSSH server of the test's own on a loopback port, with
// generated host and user keys and its own sshd_config (LogLevel DEBUG3:
// the tests scan its log for the MySQL password).
type sshd struct {
	dir, config, log string
	port             int
	hostKey, userKey string // private key files
	knownHosts       string // trusts hostKey for [127.0.0.1]:port
	cmd              *exec.Cmd
}

func keygen(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mysecure-test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	return startSSHDEnv(t, nil, "")
}

// startSSHDEnv starts an sshd whose sessions get env (NAME=value, no
// spaces) besides PATH, with pathFirst before the usual PATH: each such
// sshd is another "host" with its own mysecure settings. SHLVL=1 keeps
// bash from sourcing the test machine's ~/.bashrc for sshd sessions (one
// ran `pyenv rehash`, whose lock file a killed session left behind: every
// later session waited 60 s for it).
func startSSHDEnv(t *testing.T, env []string, pathFirst string) *sshd {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testenv.Missing(t, "sshd", "/usr/sbin/sshd (Debian openssh-server)")
	}
	testenv.RequireCommands(t, "ssh-keygen")
	os.MkdirAll("/run/sshd", 0o755)
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	s := &sshd{dir: dir, config: filepath.Join(dir, "sshd_config"), log: filepath.Join(dir, "sshd.log"),
		hostKey: filepath.Join(dir, "host_ed25519"), userKey: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts")}
	keygen(t, s.hostKey)
	keygen(t, s.userKey)
	pub, err := os.ReadFile(s.userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	hostPub, err := os.ReadFile(s.hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hostPub))
	os.WriteFile(s.knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", s.port, f[0], f[1])), 0o600)
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
LogLevel DEBUG3
SetEnv SHLVL=1 PATH=%s%s:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin %s
`, s.port, s.hostKey, dir, dir, pathFirst, filepath.Dir(binary), strings.Join(env, " "))
	os.WriteFile(s.config, []byte(conf), 0o600)
	s.start(t)
	return s
}

func (s *sshd) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("/usr/sbin/sshd", "-D", "-f", s.config, "-E", s.log)
	var errb bytes.Buffer
	s.cmd.Stderr = &errb
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.log)
			t.Fatalf("sshd did not start: %s\n%s", errb.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends this sshd and the per-connection sshd processes it forked
// (by pid: only processes of this test).
func (s *sshd) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pids := descendants(s.cmd.Process.Pid)
	s.cmd.Process.Kill()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	s.cmd.Wait()
	s.cmd = nil
}

// descendants are the processes below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// sshBackupEnv is a backup environment whose server is reached over the
// test's sshd, with a config file naming the ssh host "db1".
type sshBackupEnv struct {
	*bkEnv
	sshd   *sshd
	config string
}

func newSSHBackupEnv(t *testing.T, extraYAML string) *sshBackupEnv {
	t.Helper()
	s := startSSHD(t)
	b := newBackupEnv(t)
	// The tunnel arrives over TCP from 127.0.0.1 (the sandbox skips name
	// resolution): the same user and password for that address.
	lit := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(b.password)
	if out, err := b.srv.Client(context.Background(), fmt.Sprintf("SET sql_log_bin=0; CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'127.0.0.1';", bkUser, lit, bkUser)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	config := filepath.Join(b.dir, "mysecure.yaml")
	yaml := fmt.Sprintf(`ssh:
  hosts:
    - name: db1
      host: 127.0.0.1
      port: %d
      user: root
      identity: [%s]
      known-hosts: [%s]
      mysql-port: %d
      keepalive: 5s
    - name: db2
      host: 127.0.0.1
      port: %d
      user: root
      identity: [%s]
      known-hosts: [%s]
    - name: db3
      host: 127.0.0.1
      port: %d
      user: root
      identity: [%s]
      known-hosts: [%s]
      jump: db1
%s`, s.port, s.userKey, s.knownHosts, b.srv.Port, s.port, s.userKey, s.knownHosts, s.port, s.userKey, s.knownHosts, extraYAML)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	b.vars = append(b.vars, "MYSECURE_CONFIG="+config)
	return &sshBackupEnv{bkEnv: b, sshd: s, config: config}
}

func TestSSHBackupRestore(t *testing.T) {
	e := newSSHBackupEnv(t, `schedules:
  - name: nightly-db1
    schedule: "0 2 * * *"
    ssh: db1
    remote-dump: true
    databases: [shop]
`)
	before := dbState(t, e.srv)
	checkFixtureState(t, before)
	ctx := context.Background()

	w := watchProcs(e.password)
	// Tunnel: the dump tool runs here against a forwarded port.
	m := e.backup(t, "--ssh", "db1", "--databases", "shop,crm-2")
	if !strings.HasPrefix(m.Trailer, "-- Dump completed") {
		t.Fatalf("tunnel backup: %+v", m)
	}
	show, _ := e.ms(t, 0, "backup", "show", m.ID, "--json")
	if !strings.Contains(show, `"ssh_host": "db1"`) || !strings.Contains(show, `"mode": "tunnel"`) {
		t.Fatalf("manifest does not record the ssh host: %s", show)
	}
	if out, err := e.srv.Client(ctx, "DROP DATABASE shop; DROP DATABASE `crm-2`;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.ms(t, 0, "restore", m.ID, "--ssh", "db1")
	sameState(t, "state after a restore through the tunnel", before, dbState(t, e.srv))

	// Remote dump: the dump tool runs on the "remote" host, its output
	// comes back over the channel.
	r := e.backup(t, "--ssh", "db1", "--remote-dump", "--databases", "shop,crm-2")
	show, _ = e.ms(t, 0, "backup", "show", r.ID, "--json")
	if !strings.Contains(show, `"mode": "remote-dump"`) || !strings.HasPrefix(r.Trailer, "-- Dump completed") {
		t.Fatalf("remote dump manifest: %s", show)
	}
	if out, err := e.srv.Client(ctx, "DROP DATABASE shop; DROP DATABASE `crm-2`;"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.ms(t, 0, "restore", r.ID, "--ssh", "db1")
	sameState(t, "state after restoring a remote dump", before, dbState(t, e.srv))

	// A scheduled job over SSH (as system cron runs it) lands in the
	// catalog and the history.
	n := len(e.catalog(t))
	out, _ := e.ms(t, 0, "backup", "--job", "nightly-db1", "--json")
	var rec struct {
		Status   string `json:"status"`
		BackupID string `json:"backup_id"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Status != "success" || rec.BackupID == "" {
		t.Fatalf("job: %v %s", err, out)
	}
	cat := e.catalog(t)
	if len(cat) != n+1 || cat[len(cat)-1].ID != rec.BackupID && cat[0].ID != rec.BackupID {
		t.Fatalf("job's backup %s not in the catalog: %s", rec.BackupID, ids(cat))
	}
	hist, _ := e.msPlain(t, 0, "schedule", "history", "nightly-db1", "--json")
	if !strings.Contains(hist, rec.BackupID) || !strings.Contains(hist, `"success"`) {
		t.Fatalf("history: %s", hist)
	}
	w.finish(t, "mariadb-dump", "sshd")

	// The password is nowhere: not in a command line or environment (the
	// watch above saw the remote shell and tool too: same machine), not
	// in sshd's DEBUG3 log, not in files.
	logb, err := os.ReadFile(e.sshd.log)
	if err != nil || !bytes.Contains(logb, []byte("debug3:")) || !bytes.Contains(logb, []byte("req exec")) {
		t.Fatalf("sshd log does not show the remote command (LogLevel DEBUG3?): %v", err)
	}
	if bytes.Contains(logb, []byte(e.password)) {
		t.Fatal("the MySQL password is in sshd's log")
	}
	scanFiles(t, e.dir, e.password)
	scanFiles(t, e.sshd.dir, e.password)
	scanFiles(t, os.TempDir(), e.password)
}

func TestSSHRefusals(t *testing.T) {
	e := newSSHBackupEnv(t, "")
	n := len(e.catalog(t))

	// Unknown host key: refused, showing the offered fingerprint and the
	// line to add.
	good, _ := os.ReadFile(e.sshd.knownHosts)
	os.WriteFile(e.sshd.knownHosts, nil, 0o600)
	_, stderr := e.ms(t, 16, "backup", "--ssh", "db1")
	fp, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", e.sshd.hostKey+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(fp))[1]
	if !strings.HasPrefix(want, "SHA256:") || !strings.Contains(stderr, want) || !strings.Contains(stderr, strings.TrimSpace(string(good))) {
		t.Fatalf("unknown host key: stderr does not show %s and the line to add:\n%s", want, stderr)
	}
	if !strings.Contains(stderr, "mysecure: hint:") {
		t.Fatalf("no hint: %s", stderr)
	}

	// A changed host key is refused too.
	other := filepath.Join(e.dir, "other_host")
	keygen(t, other)
	op, _ := os.ReadFile(other + ".pub")
	f := strings.Fields(string(op))
	os.WriteFile(e.sshd.knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", e.sshd.port, f[0], f[1])), 0o600)
	_, stderr = e.ms(t, 16, "backup", "--ssh", "db1")
	if !strings.Contains(stderr, "CHANGED") {
		t.Fatalf("changed host key: %s", stderr)
	}
	os.WriteFile(e.sshd.knownHosts, good, 0o600)

	// A user key the server does not know is refused.
	wrong := filepath.Join(e.dir, "wrong_id")
	keygen(t, wrong)
	cfg, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.ReplaceAll(cfg, []byte(e.sshd.userKey), []byte(wrong)), 0o600)
	_, stderr = e.ms(t, 16, "backup", "--ssh", "db1")
	if !strings.Contains(stderr, "accepted none of the keys") {
		t.Fatalf("wrong user key: %s", stderr)
	}
	os.WriteFile(e.config, cfg, 0o600)

	// An encrypted key without a passphrase and no terminal: refused
	// with the reason; with --ssh-key-passphrase-file it works.
	enc := filepath.Join(e.dir, "enc_id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "kéy pass", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pub, _ := os.ReadFile(enc + ".pub")
	ak := filepath.Join(e.sshd.dir, "authorized_keys")
	akb, _ := os.ReadFile(ak)
	os.WriteFile(ak, append(akb, pub...), 0o600)
	os.WriteFile(e.config, bytes.ReplaceAll(cfg, []byte(e.sshd.userKey), []byte(enc)), 0o600)
	_, stderr = e.ms(t, 16, "backup", "--ssh", "db1", "--databases", "shop")
	if !strings.Contains(stderr, "no terminal") {
		t.Fatalf("encrypted key, no passphrase: %s", stderr)
	}
	pp := filepath.Join(e.dir, "pp")
	os.WriteFile(pp, []byte("kéy pass\n"), 0o600)
	e.ms(t, 0, "backup", "--ssh", "db1", "--databases", "shop", "--ssh-key-passphrase-file", pp)
	os.WriteFile(e.config, cfg, 0o600)
	n++

	// The remote server's unix socket (direct-streamlocal), through a
	// jump host.
	m := e.backup(t, "--ssh", "db3", "--ssh-mysql-socket", e.srv.Socket, "--databases", "shop")
	show, _ := e.ms(t, 0, "backup", "show", m.ID, "--json")
	if !strings.Contains(show, `"server": "unix `+e.srv.Socket+`"`) || !strings.Contains(show, `"ssh_host": "db3"`) {
		t.Fatalf("socket backup manifest: %s", show)
	}
	n++

	// No MySQL server behind the forwarded port: a clear error.
	_, stderr = e.ms(t, 16, "backup", "--ssh", "db1", "--ssh-mysql-port", "1")
	if !strings.Contains(stderr, "forwarding to tcp 127.0.0.1:1") {
		t.Fatalf("no server: %s", stderr)
	}
	if got := len(e.catalog(t)); got != n {
		t.Fatalf("catalog has %d backups, want %d", got, n)
	}

	// remote exec and status; several hosts are prefixed.
	out, _ := e.msPlain(t, 0, "remote", "exec", "db1", "--", "echo", "it's here")
	if out != "it's here\n" {
		t.Fatalf("remote exec: %q", out)
	}
	out, _ = e.msPlain(t, 0, "remote", "exec", "db1", "db2", "--", "echo", "hi")
	if !strings.Contains(out, "db1: hi\n") || !strings.Contains(out, "db2: hi\n") {
		t.Fatalf("remote exec on two hosts: %q", out)
	}
	// mysecure is installed there (the test binary on sshd's PATH), not
	// mounted.
	out, _ = e.msPlain(t, 0, "remote", "status", "db1", "--json")
	var sts []struct {
		Host      string `json:"host"`
		Reachable bool   `json:"reachable"`
		Installed bool   `json:"installed"`
		Mounted   bool   `json:"mounted"`
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 || sts[0].Host != "db1" || !sts[0].Reachable || !sts[0].Installed || sts[0].Mounted {
		t.Fatalf("remote status: %v %s", err, out)
	}
	_, stderr = e.msPlain(t, 17, "remote", "exec", "db1", "--", "sh", "-c", "exit 3")
	if !strings.Contains(stderr, "status 3") {
		t.Fatalf("remote exec failure: %s", stderr)
	}
}

// storeFiles lists the regular files of a store (names are encrypted:
// the set is what is compared).
func storeFiles(t *testing.T, store string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out[p] = true
		}
		return nil
	})
	return out
}

// TestSSHKillMidBackup: a dump blocked behind a table lock, then sshd
// dies (killed) or stops answering (SIGSTOP: found by the keepalives),
// in both modes: the backup fails with one error line, soon, and leaves
// the catalog and the store's files as they were.
func TestSSHKillMidBackup(t *testing.T) {
	e := newSSHBackupEnv(t, "")
	cfg, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.Replace(cfg, []byte("keepalive: 5s\n"), []byte("keepalive: 1s\n      keepalive-count: 2\n"), 1), 0o600)
	ctx := context.Background()
	// One backup first: the catalog's directories exist.
	e.backup(t, "--ssh", "db1", "--databases", "shop")
	// Hold a write lock on a table the dump reads: the dump waits.
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", bkUser, e.password, e.srv.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "LOCK TABLES shop.big WRITE"); err != nil {
		t.Fatal(err)
	}
	defer lock.ExecContext(ctx, "UNLOCK TABLES")
	n := len(e.catalog(t))
	files := storeFiles(t, e.store)

	for _, tc := range []struct {
		name  string
		args  []string
		fault syscall.Signal
		want  []string // in the error
	}{
		// The tunnelled tool only sees MySQL go away: the error says why.
		{"tunnel-killed", nil, syscall.SIGKILL, []string{"error: ssh connection failed: db1: the ", "; mariadb-dump failed (exit status 2)"}},
		{"remote-dump-killed", []string{"--remote-dump"}, syscall.SIGKILL, []string{"error: ssh connection failed: db1: the connection ended before the remote command did"}},
		{"tunnel-stopped", nil, syscall.SIGSTOP, []string{"error: ssh connection failed: db1: the server answered no keepalive for 2s (keepalive 1s × 2); mariadb-dump failed"}},
		{"remote-dump-stopped", []string{"--remote-dump"}, syscall.SIGSTOP, []string{"error: ssh connection failed: db1: the connection ended before the remote command did: the server answered no keepalive for 2s"}},
	} {
		// A fresh sshd for each case (the last one killed or froze it).
		e.sshd.kill()
		e.sshd.start(t)
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"backup", "--ssh", "db1", "--databases", "shop"}, tc.args...), e.creds...)
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), e.vars...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// Wait until the dump runs (here through the tunnel, or
			// under sshd).
			waitFor(t, "the dump", 60*time.Second, func() bool {
				for _, p := range append(descendants(cmd.Process.Pid), e.sshd.sessions()...) {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
					if bytes.Contains(b, []byte("mariadb-dump")) && bytes.Contains(b, []byte("--single-transaction")) {
						return true
					}
				}
				return false
			})
			time.Sleep(500 * time.Millisecond)
			if tc.fault == syscall.SIGKILL {
				e.sshd.kill()
			} else {
				e.sshd.signalSessions(t, tc.fault)
			}
			faulted := time.Now()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 16 {
					t.Fatalf("backup: %v, want exit 16 (ssh)\n%s", err, errb.String())
				}
			case <-time.After(90 * time.Second):
				t.Fatalf("backup hangs after the fault: %s", errb.String())
			}
			took := time.Since(faulted)
			oneLineError(t, tc.name, errb.String())
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Fatalf("error does not say %q:\n%s", w, errb.String())
				}
			}
			if took > 15*time.Second {
				t.Fatalf("the backup took %s to fail", took)
			}
			t.Logf("failed after %s: %s", took.Round(10*time.Millisecond), strings.TrimSpace(errb.String()))
			if got := len(e.catalog(t)); got != n {
				t.Fatalf("catalog changed: %d backups, want %d", got, n)
			}
			now := storeFiles(t, e.store)
			for f := range now {
				if !files[f] {
					t.Errorf("left in the store: %s", f)
				}
			}
		})
	}
}

// TestSSHTunnelIdle: a tunnel idle for 30 s (keepalives every 5 s) still
// carries the open MySQL connection and new ones.
func TestSSHTunnelIdle(t *testing.T) {
	e := newSSHBackupEnv(t, "")
	st := &sshclient.Settings{Hosts: []sshclient.HostConfig{{Name: "db1", Host: "127.0.0.1", Port: e.sshd.port, User: "root",
		Identity: []string{e.sshd.userKey}, KnownHosts: []string{e.sshd.knownHosts}, Keepalive: 5 * time.Second}}}
	tg, err := st.Resolve("db1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := sshclient.Dial(ctx, tg, sshclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fwd, err := c.Forward(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", e.srv.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", bkUser, e.password, fwd.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id1 int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id1); err != nil {
		t.Fatal(err)
	}
	logb, _ := os.ReadFile(e.sshd.log)
	kas := bytes.Count(logb, []byte("rtype keepalive@openssh.com want_reply 1"))
	time.Sleep(31 * time.Second)
	// The keepalives went out meanwhile (every 5 s) and were answered.
	logb, _ = os.ReadFile(e.sshd.log)
	if got := bytes.Count(logb, []byte("rtype keepalive@openssh.com want_reply 1")) - kas; got < 5 {
		t.Fatalf("sshd saw %d keepalives in 31 s, want at least 5 (every 5 s)", got)
	}
	if c.Lost() != nil {
		t.Fatalf("the idle connection was lost: %v", c.Lost())
	}
	var id2 int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id2); err != nil || id2 != id1 {
		t.Fatalf("after 30 s idle the same connection: id %d, %v (want %d)", id2, err, id1)
	}
	conn.Close()
	var v string
	db2, _ := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", bkUser, e.password, fwd.Addr()))
	defer db2.Close()
	if err := db2.QueryRowContext(ctx, "SELECT @@version").Scan(&v); err != nil || !strings.Contains(strings.ToLower(v), "mariadb") {
		t.Fatalf("a new connection after idling: %q %v", v, err)
	}
	if err := fwd.Err(); err != nil {
		t.Fatalf("forward error: %v", err)
	}
}

// TestSSHScheduleAdd: `schedule add --ssh NAME --remote-dump` writes the
// job into the config file (NAME must be a configured ssh host), and the
// line `schedule install --cron` writes for it, run as cron runs it,
// backs up over the test's sshd into the catalog and the history.
func TestSSHScheduleAdd(t *testing.T) {
	e := newSSHBackupEnv(t, "")
	for _, bad := range [][]string{
		{"--ssh", "db9"}, {"--ssh", "root@127.0.0.1"}, {"--remote-dump"},
	} {
		_, stderr := e.msPlain(t, 2, append([]string{"schedule", "add", "bad", "--schedule", "@daily"}, bad...)...)
		if !strings.Contains(stderr, "mysecure: error:") {
			t.Fatalf("schedule add %v: %s", bad, stderr)
		}
	}
	if _, stderr := e.msPlain(t, 2, "schedule", "add", "bad", "--schedule", "@daily", "--ssh", "db9"); !strings.Contains(stderr, "configured ssh hosts: db1, db2, db3") {
		t.Fatalf("unknown host: no list of the configured ones: %s", stderr)
	}
	e.msPlain(t, 0, "schedule", "add", "cron-db1", "--schedule", "15 3 * * *", "--ssh", "db1", "--remote-dump", "--databases", "shop", "--keep-last", "3")
	cfg, _ := os.ReadFile(e.config)
	if !strings.Contains(string(cfg), "name: cron-db1") || !strings.Contains(string(cfg), "ssh: db1") || !strings.Contains(string(cfg), "remote-dump: true") || strings.Contains(string(cfg), "name: bad") {
		t.Fatalf("config file after schedule add:\n%s", cfg)
	}
	keyFile := filepath.Join(e.dir, "boot.key")
	e.ms(t, 0, "key", "add", "--type", "keyfile", "--create-keyfile", keyFile)
	cronFile := filepath.Join(e.dir, "cron.d", "mysecure")
	e.msPlain(t, 0, "schedule", "install", "--cron", "--cron-file", cronFile, "--keyfile", keyFile, "cron-db1")
	data, err := os.ReadFile(cronFile)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "--job cron-db1") {
			line = l
		}
	}
	f := strings.Fields(line)
	if len(f) < 8 || strings.Join(f[:5], " ") != "15 3 * * *" || f[5] != "root" {
		t.Fatalf("cron line %q", line)
	}
	n := len(e.catalog(t))
	cmdline := strings.Join(f[6:], " ")
	cmdline = cmdline[:strings.Index(cmdline, " >>")]
	out, err := runShell(e.vars, cmdline)
	if err != nil || !strings.Contains(out, "job cron-db1: backup") {
		t.Fatalf("running the cron command %q: %v\n%s", cmdline, err, out)
	}
	cat := e.catalog(t)
	if len(cat) != n+1 {
		t.Fatalf("catalog after the cron run: %s", ids(cat))
	}
	hist, _ := e.msPlain(t, 0, "schedule", "history", "cron-db1", "--json")
	if !strings.Contains(hist, `"success"`) {
		t.Fatalf("history: %s", hist)
	}
	var id string
	for _, c := range cat {
		if strings.Contains(hist, c.ID) {
			id = c.ID
		}
	}
	show, _ := e.ms(t, 0, "backup", "show", id, "--json")
	if id == "" || !strings.Contains(show, `"ssh_host": "db1"`) || !strings.Contains(show, `"mode": "remote-dump"`) {
		t.Fatalf("the cron run's backup %q is not a remote dump over db1: %s", id, show)
	}
}

// sessions are the per-connection sshd processes (and what they run) of
// this sshd: cutting or freezing them cuts or freezes the client's
// connection while the listener stays.
func (s *sshd) sessions() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	return descendants(s.cmd.Process.Pid)
}

func (s *sshd) signalSessions(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pids := s.sessions()
	if len(pids) == 0 {
		t.Fatal("no sshd session to signal: the client is not connected")
	}
	for _, p := range pids {
		syscall.Kill(p, sig)
	}
}

// accepted counts the logins sshd logged.
func (s *sshd) accepted(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("Accepted publickey for root"))
}

// oneLineError checks that stderr ends with one "mysecure: error: ..."
// line and at most one hint line (notices such as "no daemon ...: running
// here" and JSON progress lines may come before).
func oneLineError(t *testing.T, what, stderr string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	if strings.HasPrefix(lines[len(lines)-1], "mysecure: hint: ") {
		lines = lines[:len(lines)-1]
	}
	last := lines[len(lines)-1]
	errs := strings.Count(stderr, "mysecure: error: ")
	for _, l := range lines {
		if !strings.HasPrefix(l, "mysecure: ") {
			errs = -1
		}
	}
	if !strings.HasPrefix(last, "mysecure: error: ") || errs != 1 {
		t.Fatalf("%s: not one error line (and a hint):\n%s", what, stderr)
	}
}

// TestSSHAgent: a host with no identity file authenticates with the key
// a real ssh-agent holds (added with ssh-add from stdin: the key file is
// gone by then); an emptied agent or a dead agent socket fails with one
// line naming the agent.
func TestSSHAgent(t *testing.T) {
	testenv.RequireCommands(t, "ssh-agent", "ssh-add")
	e := newSSHBackupEnv(t, "")
	cfg, _ := os.ReadFile(e.config)
	noID := bytes.ReplaceAll(cfg, []byte("      identity: ["+e.sshd.userKey+"]\n"), nil)
	if bytes.Contains(noID, []byte("identity")) {
		t.Fatalf("identity lines left:\n%s", noID)
	}
	os.WriteFile(e.config, noID, 0o600)
	// Move the key away: only the agent holds it.
	key, err := os.ReadFile(e.sshd.userKey)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(e.sshd.userKey)
	if ids := sshclient.DefaultIdentities(); len(ids) > 0 {
		t.Logf("root has default key files %v: they are offered too (and refused)", ids)
	}

	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	var agentOut bytes.Buffer
	agent.Stdout, agent.Stderr = &agentOut, &agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	waitFor(t, "the ssh-agent socket", 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	sshAdd := func(stdin []byte, args ...string) string {
		t.Helper()
		c := exec.Command("ssh-add", args...)
		c.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		c.Stdin = bytes.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-add %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	sshAdd(key, "-")
	clear(key)
	if out := sshAdd(nil, "-l"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "ED25519") {
		t.Fatalf("ssh-add -l: %s", out)
	}

	vars := e.vars
	e.vars = append(append([]string(nil), vars...), "SSH_AUTH_SOCK="+sock)
	n := len(e.catalog(t))
	logins := e.sshd.accepted(t)
	m := e.backup(t, "--ssh", "db1", "--databases", "shop")
	show, _ := e.ms(t, 0, "backup", "show", m.ID, "--json")
	if !strings.Contains(show, `"ssh_host": "db1"`) {
		t.Fatalf("backup through the agent: %s", show)
	}
	out, _ := e.msPlain(t, 0, "remote", "exec", "db1", "--", "echo", "agent ok")
	if out != "agent ok\n" {
		t.Fatalf("remote exec through the agent: %q", out)
	}
	if got := e.sshd.accepted(t); got < logins+2 {
		t.Fatalf("sshd logged %d logins, want at least %d", got, logins+2)
	}

	// The agent emptied: refused, naming the agent.
	sshAdd(nil, "-D")
	for _, args := range [][]string{{"backup", "--ssh", "db1", "--databases", "shop"}, {"remote", "exec", "db1", "--", "true"}} {
		_, stderr := e.ms(t, 16, args...)
		oneLineError(t, "empty agent", stderr)
		if !strings.Contains(stderr, "ssh-agent (it holds no keys") {
			t.Fatalf("%v with an empty agent: %s", args, stderr)
		}
	}
	// The agent gone (a stale SSH_AUTH_SOCK).
	agent.Process.Kill()
	agent.Wait()
	_, stderr := e.ms(t, 16, "backup", "--ssh", "db1", "--databases", "shop")
	oneLineError(t, "no agent", stderr)
	if !strings.Contains(stderr, "cannot connect to SSH_AUTH_SOCK "+sock) {
		t.Fatalf("dead agent: %s", stderr)
	}
	// Without SSH_AUTH_SOCK the CLI offers no agent.
	e.vars = vars
	_, stderr = e.ms(t, 16, "backup", "--ssh", "db1", "--databases", "shop")
	if strings.Contains(stderr, "ssh-agent (") || !strings.Contains(stderr, "mysecure: error: ssh authentication failed") {
		t.Fatalf("no SSH_AUTH_SOCK, yet the error names an agent: %s", stderr)
	}
	if got := len(e.catalog(t)); got != n+1 {
		t.Fatalf("catalog has %d backups, want %d", got, n+1)
	}
}

// TestSSHReconnect: one client, two operations with the connection cut
// in between (the sshd session killed, the listener up; then sshd
// restarted): the second reconnects once and works; a second cut is
// reported, as is a server that is gone.
func TestSSHReconnect(t *testing.T) {
	s := startSSHD(t)
	st := &sshclient.Settings{Hosts: []sshclient.HostConfig{{Name: "db1", Host: "127.0.0.1", Port: s.port, User: "root",
		Identity: []string{s.userKey}, KnownHosts: []string{s.knownHosts}}}}
	tg, err := st.Resolve("db1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	echo := func(c *sshclient.Client, word string) error {
		t.Helper()
		var out, errb bytes.Buffer
		err := c.Run(ctx, "echo "+word, nil, &out, &errb)
		if err == nil && out.String() != word+"\n" {
			t.Fatalf("echo %s: %q %q", word, out.String(), errb.String())
		}
		return err
	}
	oneLine := func(what string, err error) {
		t.Helper()
		if err == nil || !errors.Is(err, sshclient.ErrConnect) || strings.Contains(err.Error(), "\n") || strings.Count(err.Error(), "ssh connection failed") != 1 {
			t.Fatalf("%s: %v; want one line of ErrConnect", what, err)
		}
	}

	// dial connects and runs a first command.
	dial := func(word string) *sshclient.Client {
		t.Helper()
		c, err := sshclient.Dial(ctx, tg, sshclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := echo(c, word); err != nil {
			t.Fatal(err)
		}
		return c
	}

	c := dial("one")
	s.signalSessions(t, syscall.SIGKILL)
	logins := s.accepted(t)
	if err := echo(c, "two"); err != nil {
		t.Fatalf("after the connection was cut: %v (want one reconnect)", err)
	}
	if got := s.accepted(t); got != logins+1 {
		t.Fatalf("sshd logged %d logins after the cut, want %d", got, logins+1)
	}
	// Tunnels reconnect too: a new forwarded connection is a new channel.
	fc, err := c.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		t.Fatalf("a channel after the reconnect: %v", err)
	}
	fc.Close()
	s.signalSessions(t, syscall.SIGKILL)
	err = echo(c, "three")
	oneLine("the second cut", err)
	if !strings.Contains(err.Error(), "lost again after 1 reconnect") {
		t.Fatalf("the second cut: %v", err)
	}

	// sshd restarted between two operations.
	c2 := dial("four")
	s.kill()
	s.start(t)
	if err := echo(c2, "five"); err != nil {
		t.Fatalf("after sshd restarted: %v", err)
	}

	// sshd gone: the reconnect fails, saying why.
	c3 := dial("six")
	s.kill()
	start := time.Now()
	err = echo(c3, "seven")
	oneLine("sshd gone", err)
	if !regexp.MustCompile(`db1: the connection was lost( \(the server (closed|reset) the connection\))?; reconnecting: ssh connection failed: `).MatchString(err.Error()) || !strings.Contains(err.Error(), "connection refused") || time.Since(start) > 20*time.Second {
		t.Fatalf("sshd gone: %v after %s", err, time.Since(start))
	}
}

// TestSSHKeepaliveStopped: a server that stops answering (its sshd
// session frozen with SIGSTOP: the kernel still acknowledges every
// packet, nothing ever answers) is detected within keepalive ×
// keepalive-count, and a command running there fails with one line
// instead of hanging.
func TestSSHKeepaliveStopped(t *testing.T) {
	e := newSSHBackupEnv(t, "")
	cfg, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.Replace(cfg, []byte("keepalive: 5s\n"), []byte("keepalive: 1s\n      keepalive-count: 2\n"), 1), 0o600)
	const limit = 2 * time.Second

	cmd := exec.Command(binary, "remote", "exec", "db1", "--", "sleep", "300")
	cmd.Env = append(os.Environ(), e.vars...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the remote sleep", 30*time.Second, func() bool {
		for _, p := range e.sshd.sessions() {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); bytes.HasPrefix(b, []byte("sleep\x00300")) {
				return true
			}
		}
		return false
	})
	// Several keepalives answered first.
	time.Sleep(3 * time.Second)
	e.sshd.signalSessions(t, syscall.SIGSTOP)
	stopped := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("remote exec hangs %s after the server stopped answering: %s", time.Since(stopped), stderr.String())
	}
	took := time.Since(stopped)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 16 {
		t.Fatalf("remote exec: %v, want exit 16\n%s", err, stderr.String())
	}
	oneLineError(t, "frozen server", stderr.String())
	if !strings.Contains(stderr.String(), "answered no keepalive for 2s (keepalive 1s × 2)") {
		t.Fatalf("the error does not say why: %s", stderr.String())
	}
	// The limit after the last answer, plus the start-up of nothing:
	// the process was running; 2 s of slack for a loaded machine.
	if took > limit+2*time.Second {
		t.Fatalf("detected %s after the server stopped, keepalive × count is %s", took, limit)
	}
	t.Logf("a frozen server was detected after %s (keepalive 1s × 2)", took.Round(10*time.Millisecond))
}

// TestSSHDaemonSchedule: a job with ssh: run by the daemon (run-now
// through the job API, and on its schedule) lands in the catalog and the
// history; after the ssh: section changes (db1 moved to another sshd, the
// old one gone) the daemon keeps its settings until a reload (SIGHUP),
// and the next run uses the new ones. The password is in no process,
// log or file.
func TestSSHDaemonSchedule(t *testing.T) {
	testenv.RequireFUSE(t)
	e := newSSHBackupEnv(t, `schedules:
  - name: nightly-db1
    schedule: "0 2 * * *"
    ssh: db1
    databases: [shop]
`)
	m := mountVolume(t, e.env, nil, "MYSECURE_CONFIG="+e.config)
	w := watchProcs(e.password)
	catalog := func() []catalogEntry {
		t.Helper()
		out := m.ms(0, "backup", "list", "--json")
		var res struct {
			Backups []catalogEntry `json:"backups"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatalf("backup list: %v\n%s", err, out)
		}
		return res.Backups
	}
	inCatalog := func(id string) bool {
		for _, c := range catalog() {
			if c.ID == id {
				return true
			}
		}
		return false
	}
	daemonLog := func() string { b, _ := os.ReadFile(m.log); return string(b) }
	lastRun := func(job string) historyRec {
		t.Helper()
		h := m.history(job)
		if len(h) == 0 {
			t.Fatalf("no history for %s", job)
		}
		return h[len(h)-1]
	}

	// run-now: the CLI asks the daemon, which connects with its settings.
	m.ms(0, "schedule", "run-now", "nightly-db1")
	r := lastRun("nightly-db1")
	if r.Status != "success" || r.Trigger != "manual" || !inCatalog(r.BackupID) {
		t.Fatalf("run-now over ssh: %+v", r)
	}
	if !regexp.MustCompile(`"msg":"ssh tunnel open"[^\n]*"ssh_host":"db1"`).MatchString(daemonLog()) {
		t.Fatalf("the daemon did not run the backup over ssh:\n%s", daemonLog())
	}
	show := m.ms(0, "backup", "show", r.BackupID, "--json")
	if !strings.Contains(show, `"ssh_host": "db1"`) {
		t.Fatalf("manifest: %s", show)
	}

	// db1 moves to another sshd (its own host and user keys); the old
	// one is gone.
	s2 := startSSHD(t)
	cfg, _ := os.ReadFile(e.config)
	moved := strings.NewReplacer(fmt.Sprintf("port: %d\n", e.sshd.port), fmt.Sprintf("port: %d\n", s2.port),
		e.sshd.userKey, s2.userKey, e.sshd.knownHosts, s2.knownHosts).Replace(string(cfg))
	os.WriteFile(e.config, []byte(moved), 0o600)
	e.sshd.kill()
	// Not reloaded yet: the daemon still dials the old port.
	c := m.cmd("schedule", "run-now", "nightly-db1")
	if out, err := c.CombinedOutput(); err == nil {
		t.Fatalf("run-now before the reload worked: the daemon re-read the config by itself?\n%s", out)
	}
	if r := lastRun("nightly-db1"); r.Status != "failed" || !strings.Contains(r.Error, strconv.Itoa(e.sshd.port)) {
		t.Fatalf("run before the reload: %+v, want a failure naming the old port", r)
	}

	// SIGHUP: the daemon re-reads schedules and ssh: section.
	var st map[string]any
	json.Unmarshal([]byte(m.ms(0, "status", "--json")), &st)
	pid, _ := st["pid"].(float64)
	if pid == 0 {
		t.Fatalf("status has no pid: %v", st)
	}
	loads := strings.Count(daemonLog(), "schedules loaded")
	syscall.Kill(int(pid), syscall.SIGHUP)
	waitFor(t, "the reload", 10*time.Second, func() bool { return strings.Count(daemonLog(), "schedules loaded") > loads })
	if strings.Contains(daemonLog(), "schedule reload failed") {
		t.Fatalf("reload failed:\n%s", daemonLog())
	}
	m.ms(0, "schedule", "run-now", "nightly-db1")
	if r := lastRun("nightly-db1"); r.Status != "success" || !inCatalog(r.BackupID) {
		t.Fatalf("run-now after the reload: %+v", r)
	}
	if s2.accepted(t) == 0 {
		t.Fatal("the new sshd saw no login")
	}

	// On its schedule: `schedule add` reloads the daemon through the job
	// API; the scheduler's run connects with the same settings.
	out := m.ms(0, "schedule", "add", "often-db1", "--schedule", "@every 2s", "--ssh", "db1", "--remote-dump", "--databases", "shop")
	if !strings.Contains(out, "reloaded its schedules (2 jobs)") {
		t.Fatalf("schedule add did not reach the daemon: %s", out)
	}
	waitFor(t, "a scheduled run over ssh", 60*time.Second, func() bool { return count(m.history("often-db1"), "success") >= 1 })
	m.ms(0, "schedule", "remove", "often-db1")
	var sched historyRec
	for _, h := range m.history("often-db1") {
		if h.Status == "success" {
			sched = h
			break
		}
	}
	if sched.Trigger != "schedule" || !inCatalog(sched.BackupID) {
		t.Fatalf("scheduled run: %+v", sched)
	}
	show = m.ms(0, "backup", "show", sched.BackupID, "--json")
	if !strings.Contains(show, `"ssh_host": "db1"`) || !strings.Contains(show, `"mode": "remote-dump"`) {
		t.Fatalf("scheduled run's manifest: %s", show)
	}
	time.Sleep(3 * time.Second) // a run in flight finishes
	w.finish(t, "mariadb-dump", "sshd")

	for _, f := range []string{e.sshd.log, s2.log, m.log} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		if bytes.Contains(b, []byte(e.password)) {
			t.Fatalf("the MySQL password is in %s", f)
		}
	}
	scanFiles(t, e.dir, e.password)
	scanFiles(t, s2.dir, e.password)
}
