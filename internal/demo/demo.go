// Package demo tells the story of the seed posts on a sandbox, for
// `mysecure demo` (and `make demo`): a volume and a mount, a private
// MariaDB with sample data set up by `policy apply mysql-host`, the
// server serving from the encrypted datadir while others are denied, a
// backup run by a member of the backup group who never sees the MySQL
// password, verified and restored with equal checksums, the
// --skip-grant-tables guard, and `policy check` clean then drifting.
//
// It runs the real mysecure binary (Options.Exe) for every step, with
// private paths: the store, mount, sockets, state, logs, config file, a
// private copy of mariadbd (never the host's /usr/sbin/mariadbd) and its
// option and unit directories all live in one temporary directory. The
// backup group member is a throwaway system user and group, created for
// the run and removed at the end. Everything is removed at the end, on
// success, failure and cancellation (Ctrl-C cancels ctx).
//
// It never prints: each step is reported through Options.Report.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"

	"github.com/mysecure/mysecure/internal/procfs"
)

// The steps, in order; each report carries one of these names.
const (
	StepInit     = "init"
	StepMount    = "mount"
	StepServer   = "sample server"
	StepPolicy   = "policy apply mysql-host"
	StepServes   = "serves encrypted"
	StepDenied   = "cat denied"
	StepStore    = "store is ciphertext"
	StepBackup   = "backup by the group member"
	StepVerify   = "verify"
	StepRestore  = "restore"
	StepGuard    = "skip-grant-tables dropped"
	StepCheck    = "policy check"
	StepDrift    = "drift"
	StepCleanup  = "cleanup"
	demoAccount  = "mysecure-demo" // the throwaway backup group member and its group
	sampleMarker = "4111-1111-1111-1111"
)

// Steps lists the step names in the order Run reports them.
var Steps = []string{StepInit, StepMount, StepServer, StepPolicy, StepServes, StepDenied, StepStore,
	StepBackup, StepVerify, StepRestore, StepGuard, StepCheck, StepDrift, StepCleanup}

// Event is one step done: its name and one short line of what it proves.
type Event struct {
	Step   string
	Proves string
}

// Options configure Run.
type Options struct {
	// Exe is the mysecure binary; mysqld-guard must be next to it.
	Exe string
	// Parent holds the sandbox directory (default: os.TempDir()).
	Parent string
	// Report gets each step as it completes.
	Report func(Event)
	// Keep leaves the sandbox in place on failure (for debugging); the
	// mount, server and demo account are removed all the same.
	Keep bool
}

// ErrStep is a step of the story that did not prove what it should.
var ErrStep = errors.New("demo step failed")

type run struct {
	o       Options
	dir     string
	env     []string
	creds   []string
	exe     string // a copy of mysecure others may execute
	root    string // the host-like layout of the private server
	bin     string // R/usr/sbin/mariadbd
	datadir string
	mnt     string
	srvOpts sandbox.Options
	srv     *sandbox.Server
	mounted bool
	uid     uint32
	gid     uint32
	madeAcc bool
	madeGrp bool
	// pwFile holds the backup account's password until the store has it.
	pwFile   string
	backupID string
}

func (r *run) report(step, proves string) {
	if r.o.Report != nil {
		r.o.Report(Event{Step: step, Proves: proves})
	}
}

// Run tells the story and removes everything it made.
func Run(ctx context.Context, o Options) (err error) {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the demo needs root (a FUSE mount, a private MariaDB, a throwaway user)", ErrStep)
	}
	if o.Exe == "" {
		return fmt.Errorf("%w: no mysecure binary", ErrStep)
	}
	for _, c := range []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump", "useradd", "groupadd", "userdel", "groupdel"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%w: %s is not installed (make deps installs it)", ErrStep, c)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(o.Exe), "mysqld-guard")); err != nil {
		return fmt.Errorf("%w: mysqld-guard is not next to %s (make build)", ErrStep, o.Exe)
	}
	if o.Parent == "" {
		o.Parent = os.TempDir()
	}
	if err := traversable(o.Parent); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.Parent, "mysecure-demo-")
	if err != nil {
		return err
	}
	r := &run{o: o, dir: dir}
	defer func() {
		cerr := r.cleanup(err != nil && o.Keep)
		if err == nil && cerr != nil {
			err = cerr
		}
		if err == nil {
			r.report(StepCleanup, "server stopped, volume unmounted, demo user and group removed, "+dir+" deleted: the host is as before")
		}
	}()
	for _, f := range []func(context.Context) error{r.initVolume, r.mount, r.sampleServer, r.policy, r.serves, r.backup, r.restore, r.guard, r.check} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// cleanup undoes the run in reverse: server, mount, account, directory.
func (r *run) cleanup(keepDir bool) error {
	var errs []error
	if r.srv != nil && !r.srv.Exited() {
		if err := r.srv.Stop(); err != nil {
			r.srv.Kill()
		}
	}
	if r.mounted {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := r.ms(ctx, "umount"); err != nil {
			exec.Command("umount", "-l", r.mnt).Run()
		}
		cancel()
		if mounted(r.mnt) {
			errs = append(errs, fmt.Errorf("the demo mount %s is still mounted", r.mnt))
		}
	}
	if r.madeAcc {
		if out, err := exec.Command("userdel", demoAccount).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("userdel %s: %v %s", demoAccount, err, bytes.TrimSpace(out)))
		}
	}
	if r.madeGrp {
		if _, err := user.LookupGroup(demoAccount); err == nil {
			if out, err := exec.Command("groupdel", demoAccount).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("groupdel %s: %v %s", demoAccount, err, bytes.TrimSpace(out)))
			}
		}
	}
	if !keepDir && !mounted(r.mnt) {
		if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// traversable checks that other users (the server's, the group
// member) can reach dir: every directory from / has search permission
// for others.
func traversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%w: %s is mode %04o: the server's user and the backup group member cannot reach a sandbox under %s (pick another --dir)", ErrStep, p, fi.Mode().Perm(), abs)
		}
		if p == "/" {
			return nil
		}
	}
}

func mounted(dir string) bool {
	if dir == "" {
		return false
	}
	mounts, _ := procfs.Mounts()
	for _, m := range mounts {
		if m.Point == dir {
			return true
		}
	}
	return false
}

// ms runs mysecure as root with the sandbox's environment.
func (r *run) ms(ctx context.Context, args ...string) (string, error) {
	return r.msAs(ctx, nil, args...)
}

// msAs runs mysecure (as cred when set) and returns its output; a
// non-zero exit is an *exec.ExitError with the output in the message.
func (r *run) msAs(ctx context.Context, cred *syscall.Credential, args ...string) (string, error) {
	exe := r.o.Exe
	if cred != nil {
		exe = r.exe
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", "LANG=C"}, r.env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		// The member reads no root-only file: a config of its own.
		cmd.Env = append(cmd.Env, "MYSECURE_CONFIG="+filepath.Join(r.dir, "member.yaml"))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("mysecure %s: %w: %s", strings.Join(args, " "), err, lastLine(out.String()))
	}
	return out.String(), nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "mysecure: error: ") {
			return strings.TrimPrefix(lines[i], "mysecure: error: ")
		}
	}
	return lines[len(lines)-1]
}

func secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *run) initVolume(ctx context.Context) error {
	// Others (the server's user, the group member) traverse the sandbox.
	if err := os.Chmod(r.dir, 0o755); err != nil {
		return err
	}
	sec := filepath.Join(r.dir, "secrets")
	if err := os.Mkdir(sec, 0o700); err != nil {
		return err
	}
	pass, salt := filepath.Join(sec, "passphrase"), filepath.Join(sec, "salt")
	if err := os.WriteFile(pass, []byte(secret(16)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(salt, []byte(secret(8)), 0o600); err != nil {
		return err
	}
	r.creds = []string{"--passphrase-file", pass, "--salt-file", salt}
	r.mnt = filepath.Join(r.dir, "mnt")
	cfg := filepath.Join(r.dir, "mysecure.yaml")
	if err := os.WriteFile(cfg, []byte("# the demo's configuration\nschedules: []\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "member.yaml"), []byte("# the backup group member's configuration: the daemon has the rest\n"), 0o644); err != nil {
		return err
	}
	run := filepath.Join(r.dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		return err
	}
	r.env = []string{"MYSECURE_STORE=" + filepath.Join(r.dir, "store"), "MYSECURE_MOUNT=" + r.mnt,
		"MYSECURE_SOCKET=" + filepath.Join(run, "ctl.sock"), "MYSECURE_AUDIT_LOG=" + filepath.Join(r.dir, "access.log"),
		"MYSECURE_LOG_FILE=" + filepath.Join(r.dir, "daemon.log"), "MYSECURE_STATE_DIR=" + filepath.Join(r.dir, "state"),
		"MYSECURE_CONFIG=" + cfg, "MYSECURE_BACKUP_GROUP=" + demoAccount, "MYSECURE_JOB_SOCKET=" + filepath.Join(run, "jobs.sock")}
	if _, err := r.ms(ctx, append([]string{"init"}, r.creds...)...); err != nil {
		return err
	}
	r.report(StepInit, "a volume whose master key is wrapped by a passphrase and a salt (random, handed over as files, never in argv)")
	return nil
}

func (r *run) mount(ctx context.Context) error {
	if err := r.account(); err != nil {
		return err
	}
	if _, err := r.ms(ctx, append([]string{"mount"}, r.creds...)...); err != nil {
		return err
	}
	r.mounted = true
	r.report(StepMount, fmt.Sprintf("the daemon holds the keys and serves the plaintext view at %s; only rules decide who reads it", r.mnt))
	return nil
}

// account makes the throwaway backup group member (a system user with no
// home and no shell, in a group of its own), refusing to reuse one that
// exists: the demo removes only what it made.
func (r *run) account() error {
	if _, err := user.Lookup(demoAccount); err == nil {
		return fmt.Errorf("%w: a user %s exists already (left by an interrupted demo?): remove it with 'userdel %s'", ErrStep, demoAccount, demoAccount)
	}
	if _, err := user.LookupGroup(demoAccount); err == nil {
		return fmt.Errorf("%w: a group %s exists already (left by an interrupted demo?): remove it with 'groupdel %s'", ErrStep, demoAccount, demoAccount)
	}
	if out, err := exec.Command("groupadd", "--system", demoAccount).CombinedOutput(); err != nil {
		return fmt.Errorf("groupadd: %v %s", err, bytes.TrimSpace(out))
	}
	r.madeGrp = true
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", demoAccount, demoAccount).CombinedOutput(); err != nil {
		return fmt.Errorf("useradd: %v %s", err, bytes.TrimSpace(out))
	}
	r.madeAcc = true
	u, err := user.Lookup(demoAccount)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	r.uid, r.gid = uint32(uid), uint32(gid)
	// A copy of mysecure the member may execute.
	r.exe = filepath.Join(r.dir, "bin", "mysecure")
	return copyFile(r.o.Exe, r.exe, 0o755)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func (r *run) sampleServer(ctx context.Context) error {
	r.root = filepath.Join(r.dir, "root")
	r.bin = filepath.Join(r.root, "usr", "sbin", "mariadbd")
	r.datadir = filepath.Join(r.root, "var", "lib", "mysql")
	for _, d := range []string{filepath.Dir(r.bin), filepath.Dir(r.datadir), filepath.Join(r.root, "lib", "systemd", "system"),
		filepath.Join(r.root, "etc", "systemd", "system"), filepath.Join(r.root, "etc", "mysql", "mariadb.conf.d"), filepath.Join(r.root, "etc", "mysecure")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	sys, err := exec.LookPath("mariadbd")
	if err != nil {
		return err
	}
	if err := copyFile(sys, r.bin, 0o755); err != nil {
		return err
	}
	r.srvOpts = sandbox.Options{Dir: filepath.Join(r.dir, "srv"), DataDir: r.datadir}
	if err := sandbox.Init(ctx, r.srvOpts); err != nil {
		return err
	}
	if err := r.start(ctx, r.bin); err != nil {
		return err
	}
	sql := "CREATE DATABASE shop; USE shop; CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40), card VARCHAR(40));" +
		"INSERT INTO customers SELECT seq, CONCAT('customer-', seq), CONCAT('" + sampleMarker + "-', seq) FROM seq_1_to_5000;"
	if _, err := r.srv.Client(ctx, sql); err != nil {
		return err
	}
	// The backup account: its password goes through a private file into
	// the store, and nowhere else.
	pw := "Demo-" + secret(12)
	if _, err := r.srv.Client(ctx, "CREATE USER 'backup'@'localhost' IDENTIFIED BY '"+pw+"'; GRANT ALL ON *.* TO 'backup'@'localhost';"); err != nil {
		return err
	}
	if err := r.stop(); err != nil {
		return err
	}
	pwFile := filepath.Join(r.dir, "secrets", "mysql-password")
	if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
		return err
	}
	r.report(StepServer, fmt.Sprintf("a private MariaDB (a copy of mariadbd at %s, datadir %s) with 5000 customers and their card numbers", r.bin, r.datadir))
	r.pwFile = pwFile
	return nil
}

func (r *run) start(ctx context.Context, bin string, args ...string) error {
	o := r.srvOpts
	o.Binary, o.Args = bin, args
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		return err
	}
	r.srv = s
	return nil
}

func (r *run) stop() error {
	if r.srv == nil || r.srv.Exited() {
		return nil
	}
	err := r.srv.Stop()
	r.srv = nil
	return err
}

func (r *run) policySets() []string {
	return []string{"--set", "mysqld=" + r.bin, "--set", "datadir=" + r.datadir,
		"--set", "harden-state=" + filepath.Join(r.root, "etc", "mysecure", "harden-mysqld.json"),
		"--set", "guard-config=" + filepath.Join(r.root, "etc", "mysecure", "mysqld-guard.json"),
		"--set", "cnf-dir=" + filepath.Join(r.root, "etc", "mysql", "mariadb.conf.d"),
		"--set", "unit-dirs=" + filepath.Join(r.root, "lib", "systemd", "system"),
		"--set", "dropin-dir=" + filepath.Join(r.root, "etc", "systemd", "system")}
}

func (r *run) policy(ctx context.Context) error {
	out, err := r.ms(ctx, append(append([]string{"policy", "apply", "mysql-host"}, r.policySets()...), r.creds...)...)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`applied mysql-host: (\d+) step`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("%w: policy apply did not say what it applied: %s", ErrStep, lastLine(out))
	}
	r.report(StepPolicy, fmt.Sprintf("one command, %s steps: the datadir moved into @mysql, the server binary behind the guard, backup rules and schedules", m[1]))
	return nil
}

func (r *run) serves(ctx context.Context) error {
	if err := r.start(ctx, r.bin+"-guard"); err != nil {
		return fmt.Errorf("start through the guard: %w", err)
	}
	out, err := r.srv.Client(ctx, "SELECT COUNT(*) FROM shop.customers; SELECT @@datadir;")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "5000") {
		return fmt.Errorf("%w: the server on the encrypted datadir counts %q customers", ErrStep, strings.TrimSpace(out))
	}
	target, _ := os.Readlink(r.datadir)
	r.report(StepServes, fmt.Sprintf("the server, started through %s-guard, reads its 5000 rows from the encrypted datadir (%s -> %s)", filepath.Base(r.bin), r.datadir, target))

	// cat as root, reading a table file through the symlink.
	file := filepath.Join(r.datadir, "shop", "customers.ibd")
	b, err := exec.CommandContext(ctx, "/usr/bin/cat", file).CombinedOutput()
	if err == nil || !bytes.Contains(b, []byte("Permission denied")) {
		return fmt.Errorf("%w: cat of %s was not denied (%v)", ErrStep, file, err)
	}
	r.report(StepDenied, "root's cat of shop/customers.ibd: Permission denied (only the fingerprinted server may open @mysql)")

	// The store: no card number anywhere.
	n, err := scan(filepath.Join(r.dir, "store"), sampleMarker)
	if err != nil {
		return err
	}
	r.report(StepStore, fmt.Sprintf("%d files in the store, none holds a card number: a copied disk or backup of it is ciphertext", n))
	return nil
}

// scan reads every regular file under dir and fails if one holds needle.
func scan(dir, needle string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(needle)) {
			return fmt.Errorf("%w: plaintext %q in the store file %s", ErrStep, needle, p)
		}
		return nil
	})
	return n, err
}

func (r *run) backup(ctx context.Context) error {
	if _, err := r.ms(ctx, "backup", "credentials", "set", "--user", "backup", "--mysql-socket", r.srv.Socket, "--password-file", r.pwFile); err != nil {
		return err
	}
	if err := os.Remove(r.pwFile); err != nil {
		return err
	}
	member := &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{r.gid}}
	if _, err := r.msAs(ctx, member, "backup", "credentials", "list"); exitCode(err) != 7 {
		return fmt.Errorf("%w: the group member was not refused the credentials (%v)", ErrStep, err)
	}
	out, err := r.msAs(ctx, member, "backup", "--databases", "shop")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`backup (\S+) complete`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("%w: no backup ID in the member's output: %s", ErrStep, lastLine(out))
	}
	r.backupID = m[1]
	r.report(StepBackup, fmt.Sprintf("user %s (group %s) ran backup %s through the daemon: no password in its hands ('credentials list' refused it), the dump encrypted in @mysqlbackup", demoAccount, demoAccount, r.backupID))
	if _, err := r.msAs(ctx, member, "backup", "verify", r.backupID); err != nil {
		return err
	}
	r.report(StepVerify, "every block of the backup decrypts and authenticates, and the stream's SHA-256 matches its manifest")
	return nil
}

func (r *run) restore(ctx context.Context) error {
	if _, err := r.ms(ctx, "restore", r.backupID, "--rename-to", "shop_restored"); err != nil {
		return err
	}
	out, err := r.srv.Client(ctx, "CHECKSUM TABLE shop.customers, shop_restored.customers EXTENDED;")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sum := func(i int) string {
		if f := strings.Split(lines[i], "\t"); len(f) == 2 {
			return f[1]
		}
		return "?" + strconv.Itoa(i)
	}
	if len(lines) != 2 || sum(0) != sum(1) || sum(0) == "NULL" {
		return fmt.Errorf("%w: checksums after the restore differ: %q", ErrStep, out)
	}
	r.report(StepRestore, fmt.Sprintf("restored into a fresh database shop_restored: CHECKSUM TABLE equal (%s)", sum(0)))
	return nil
}

func (r *run) guard(ctx context.Context) error {
	if err := r.stop(); err != nil {
		return err
	}
	if err := r.start(ctx, r.bin+"-guard", "--skip-grant-tables"); err != nil {
		return fmt.Errorf("start through the guard with --skip-grant-tables: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--protocol=TCP", "-h127.0.0.1", "-P"+strconv.Itoa(r.srv.Port), "--skip-ssl", "-uintruder", "-e", "SELECT 1")
	out, err := cmd.CombinedOutput()
	// Denied by the grant tables: a wrong account (1045) or no account
	// for that host (1130). With --skip-grant-tables anyone is let in.
	if err == nil || !(bytes.Contains(out, []byte("Access denied")) || bytes.Contains(out, []byte("is not allowed to connect"))) {
		return fmt.Errorf("%w: a passwordless login on a server started with --skip-grant-tables was not denied: %s", ErrStep, bytes.TrimSpace(out))
	}
	if err := r.stop(); err != nil {
		return err
	}
	// The server binary itself cannot be started around the guard.
	if err := r.start(ctx, r.bin, "--skip-grant-tables"); err == nil {
		return fmt.Errorf("%w: the server binary started around the guard", ErrStep)
	}
	r.srv = nil
	r.report(StepGuard, "started with --skip-grant-tables, the guard dropped it (a passwordless login is refused); the binary run directly cannot even be read")
	return nil
}

func (r *run) check(ctx context.Context) error {
	out, err := r.ms(ctx, "policy", "check")
	if err != nil {
		return err
	}
	ok := strings.Count(out, ": ok: ")
	r.report(StepCheck, fmt.Sprintf("%d steps of mysql-host in place, no drift, exit 0", ok))
	rule := ""
	for _, l := range strings.Split(out, "\n") {
		if _, after, found := strings.Cut(l, "ok:    add rule: "); found && strings.HasPrefix(after, "ALLOW @mysqlbackup") {
			rule = strings.TrimSpace(after)
		}
	}
	if rule == "" {
		return fmt.Errorf("%w: policy check lists no @mysqlbackup rule: %s", ErrStep, lastLine(out))
	}
	if _, err := r.ms(ctx, append([]string{"acl", "del", rule}, r.creds...)...); err != nil {
		return err
	}
	out, err = r.ms(ctx, "policy", "check")
	if exitCode(err) != 15 {
		return fmt.Errorf("%w: policy check after a deleted rule: %v", ErrStep, err)
	}
	drift := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mysql-host: drift: ") {
			drift = strings.TrimPrefix(strings.TrimSpace(l), "mysql-host: drift: ")
		}
	}
	if drift == "" {
		return fmt.Errorf("%w: policy check named no drift: %s", ErrStep, lastLine(out))
	}
	r.report(StepDrift, fmt.Sprintf("a rule deleted by hand: policy check exits 15 and says %q", drift))
	return nil
}
