package integration

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
	"github.com/mysecure/mysecure/internal/testenv"
)

// The built-in default paths, as a new user gets them (no --store,
// --mount, --socket, no MYSECURE_* settings).
var defaultPaths = []string{"/var/lib/mysecure", "/run/mysecure", "/var/log/mysecure"}

// TestDefaultPathsMariaDB walks the main flow on the built-in defaults,
// under root's umask 077, with a MariaDB that runs as mysql from the
// mount. Before issue 14 init created /var/lib/mysecure 0700 with the
// store: every non-root program was kept from the mount by the kernel
// (InnoDB: "Cannot open ib_buffer_pool: Permission denied") and no denial
// said why.
func TestDefaultPathsMariaDB(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb")
	m := newDefaultsMount(t) // init and mount under umask 077
	dir := m.dir
	run := func(want int, args ...string) string {
		t.Helper()
		return m.ms(want, args...)
	}
	creds := m.creds()
	for p, want := range map[string]os.FileMode{"/var/lib/mysecure": 0o755, "/var/lib/mysecure/storage": 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v, mode %04o, want %04o", p, err, fi.Mode().Perm(), want)
		}
	}

	// A datadir laid out like a host's, encrypted into @mysql with the
	// default categories, and the system server allowed on it.
	base := filepath.Join(dir, "srv")
	datadir := filepath.Join(base, "mysql")
	os.Mkdir(base, 0o755)
	o := sandbox.Options{Dir: filepath.Join(dir, "run"), DataDir: datadir}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sandbox.Init(ctx, o); err != nil {
		t.Fatal(err)
	}
	run(0, append([]string{"encrypt", "@mysql", datadir}, creds...)...)
	mariadbd, _ := exec.LookPath("mariadbd")
	mariadbd, _ = filepath.EvalSymlinks(mariadbd)
	out := run(0, append([]string{"acl", "add", "ALLOW @mysql " + strings.TrimPrefix(datadir, "/") + "/* " + mariadbd + " --user=mysql"}, creds...)...)
	if strings.Contains(out, "cannot reach") {
		t.Fatalf("acl add warns on the defaults:\n%s", out)
	}
	o.Binary = mariadbd
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(o.Dir, "error.log"))
		t.Fatalf("mariadbd as mysql from the mount on the default paths: %v\n%s", err, b)
	}
	defer s.Stop()
	if out, err := s.Client(ctx, "CREATE DATABASE d; CREATE TABLE d.t (v VARCHAR(20)) ENGINE=InnoDB; INSERT INTO d.t VALUES ('on-defaults'); SELECT v FROM d.t;"); err != nil || !strings.Contains(out, "on-defaults") {
		t.Fatalf("query: %v %s", err, out)
	}
	if b, err := exec.Command("cat", filepath.Join(datadir, "ibdata1")).CombinedOutput(); err == nil {
		t.Fatalf("cat of the encrypted datadir was allowed (%d bytes)", len(b))
	}
	if out := run(0, "status"); strings.Contains(out, "cannot reach") {
		t.Fatalf("status warns on the defaults:\n%s", out)
	}

	// The 0700 parent of old: status names the directory that blocks.
	os.Chmod("/var/lib/mysecure", 0o700)
	out = run(0, "status")
	os.Chmod("/var/lib/mysecure", 0o755)
	if !strings.Contains(out, "mysql (uid "+strconv.Itoa(mysqlUID(t))+") cannot reach the mount: /var/lib/mysecure is mode 0700") || !strings.Contains(out, "chmod o+x /var/lib/mysecure") {
		t.Fatalf("status does not name the blocking directory:\n%s", out)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	run(0, append([]string{"decrypt", "@mysql", datadir}, creds...)...)
}

func mysqlUID(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("id", "-u", "mysql").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}
