package audit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// slaveStatus returns the replica's SHOW SLAVE STATUS as name -> value
// (the client's vertical output).
func slaveStatus(ctx context.Context, t *testing.T, srv *sandbox.Server) map[string]string {
	t.Helper()
	// Vertical output with the column names (the sandbox's client skips
	// them).
	b, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+srv.Socket, "-uroot", "--vertical", "-e", "SHOW SLAVE STATUS").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok {
			m[k] = v
		}
	}
	return m
}

// waitReplicating waits until the replica's IO thread is connected to
// the primary and a row written there has arrived.
func waitReplicating(ctx context.Context, t *testing.T, primary, replica *sandbox.Server, mark string) {
	t.Helper()
	if out, err := primary.Client(ctx, "INSERT INTO repl.t VALUES ('"+mark+"')"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := slaveStatus(ctx, t, replica)
		out, _ := replica.Client(ctx, "SELECT COUNT(*) FROM repl.t WHERE v = '"+mark+"'")
		if st["Slave_IO_Running"] == "Yes" && strings.TrimSpace(out) == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not replicate %q: IO %s (%s), SQL %s (%s)\n%v\n%s", mark, st["Slave_IO_Running"], st["Last_IO_Error"], st["Slave_SQL_Running"], st["Last_SQL_Error"], st, replica.ErrorLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLiveReplication runs a real primary and a real replica: replication
// in clear text fails replication.tls (on the replica) and
// replication.user-tls (on the primary), and world-readable relay logs
// fail files.relay-logs; replication over TLS with the primary's
// certificate verified, a replication account that requires TLS and
// private relay logs pass.
func TestLiveReplication(t *testing.T) {
	p, r := newLiveEnv(t), newLiveEnv(t)
	dir := filepath.Join(filepath.Dir(p.dir), "tls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, cert, key := writeTLS(t, dir)
	if err := chownUser(key); err != nil {
		t.Fatal(err)
	}
	p.chmod(key, 0o600)
	for _, e := range []*liveEnv{p, r} {
		e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	}
	primary := p.start("--server-id=1", "--log-bin="+filepath.Join(p.dir, "binlog"), "--ssl-cert="+cert, "--ssl-key="+key, "--ssl-ca="+ca)
	p.sql(primary, "CREATE USER 'repl'@'%' IDENTIFIED BY 'Repl!pw-123'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"+
		" CREATE DATABASE repl; CREATE TABLE repl.t (v VARCHAR(20));")
	relay := filepath.Join(r.dir, "relay")
	replica := r.start("--server-id=2", "--relay-log="+relay, "--read-only=ON")
	r.sql(replica, "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT="+strconv.Itoa(primary.Port)+", MASTER_USER='repl', MASTER_PASSWORD='Repl!pw-123',"+
		" MASTER_USE_GTID=no, MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4; START SLAVE;")
	waitReplicating(p.ctx, t, primary, replica, "clear")
	if st := slaveStatus(p.ctx, t, replica); st["Master_SSL_Allowed"] != "No" {
		t.Fatalf("the replica was meant to replicate without TLS: %v", st)
	}
	files, _ := filepath.Glob(relay + ".*")
	if len(files) == 0 {
		t.Fatalf("no relay logs %s.*", relay)
	}
	for _, f := range files {
		r.chmod(f, 0o644)
	}

	fs := r.audit(clientQuery(replica))
	expect(t, fs, "replication.tls", Fail, []string{"replication from 127.0.0.1 (connection \"\") does not use TLS (MASTER_SSL=0)", "does not verify the primary's certificate"})
	expect(t, fs, "files.relay-logs", Fail, []string{"relay.000001 has mode 0644, more than 0660", "relay.index has mode 0644"})
	fs = p.audit(clientQuery(primary))
	expect(t, fs, "replication.user-tls", Fail, []string{"replication account 'repl'@'%' may connect from other hosts with ssl_type none"}, "'root'@")
	expect(t, fs, "replication.tls", NotApplicable, []string{"not a replica"})
	expect(t, fs, "files.relay-logs", NotApplicable, nil)

	// Fix: the account requires TLS, and the replica uses it and
	// verifies the primary's certificate (the row below arrives only if
	// the TLS connection is made).
	p.sql(primary, "ALTER USER 'repl'@'%' REQUIRE SSL;")
	r.sql(replica, "STOP SLAVE; CHANGE MASTER TO MASTER_SSL=1, MASTER_SSL_CA='"+ca+"', MASTER_SSL_VERIFY_SERVER_CERT=1; START SLAVE;")
	waitReplicating(p.ctx, t, primary, replica, "tls")
	if st := slaveStatus(p.ctx, t, replica); st["Master_SSL_Allowed"] != "Yes" || st["Master_SSL_Verify_Server_Cert"] != "Yes" {
		t.Fatalf("the replica was meant to replicate over verified TLS: %v", st)
	}
	files, _ = filepath.Glob(relay + ".*")
	for _, f := range files {
		r.chmod(f, 0o640)
	}
	fs = r.audit(clientQuery(replica))
	expect(t, fs, "replication.tls", Pass, []string{"replication from 127.0.0.1 (connection \"\") inspected"})
	expect(t, fs, "files.relay-logs", Pass, []string{"relay.index (mode 0640, owner mysql)"})
	fs = p.audit(clientQuery(primary))
	expect(t, fs, "replication.user-tls", Pass, []string{"1 remote replication accounts inspected"})
}
