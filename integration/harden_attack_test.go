package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The attacks of issue 13 against a hardened server, run as root the way
// the attack run did. Each one worked against the guard before the fix
// (the configuration swap and the forged datadir gave a passwordless login
// that read the marker row; the bound rule was `@mysql *`).

// attackConfigSwap: the path the guard was told to read (the environment
// variable it used to honour) is a symlink to a FIFO. When the guard opens
// the FIFO, the attacker repoints the symlink to the genuine configuration
// (so that a later check of the path passes) and writes a forged
// configuration whose init-file allow-list lets an attacker's init file
// create a user with every privilege.
func (h *hardenEnv) attackConfigSwap(t *testing.T, wrapper string) {
	dir := filepath.Join(h.dir, "swap")
	os.MkdirAll(dir, 0o755)
	evil := filepath.Join(dir, "evil.sql")
	os.WriteFile(evil, []byte("CREATE USER 'evil'@'127.0.0.1';\nGRANT ALL ON *.* TO 'evil'@'127.0.0.1';\n"), 0o644)
	forged, _ := json.Marshal(map[string]any{
		"real_binary": filepath.Join(h.mnt, "protected", h.bin), "init_file_allow": []string{dir + "/"},
		"mount": h.mnt, "pins": map[string]any{"options": []map[string]string{{"option": "datadir", "value": filepath.Join(h.mnt, "mysql", h.datadir)}}},
	})
	fifo := filepath.Join(dir, "guard.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "guard.json")
	os.Symlink(fifo, link)
	t.Setenv("MYSECURE_GUARD_CONFIG", link)
	defer t.Setenv("MYSECURE_GUARD_CONFIG", h.guardCfg)
	stop, swapped := make(chan struct{}), make(chan bool, 1)
	go func() {
		for {
			select {
			case <-stop:
				swapped <- false
				return
			default:
			}
			fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == syscall.ENXIO { // no reader yet
				time.Sleep(2 * time.Millisecond)
				continue
			}
			if err != nil {
				swapped <- false
				return
			}
			os.Remove(link)
			os.Symlink(h.guardCfg, link)
			syscall.Write(fd, forged)
			syscall.Close(fd)
			swapped <- true
			return
		}
	}()
	s, err := h.start(wrapper, nil, "--init-file="+evil)
	close(stop)
	if <-swapped {
		t.Log("the guard read the FIFO")
	}
	if err != nil {
		// The guard removes the init file it does not allow and starts the
		// server: a start that fails proves nothing either way.
		t.Fatalf("start: %v", err)
	}
	defer s.Stop()
	if err := login(s, "evil", ""); err == nil {
		t.Fatal("the swapped configuration let the attacker's init file run: 'evil' logs in with every privilege")
	}
	if err := login(s, "app", "App-Pw-1"); err != nil {
		t.Fatalf("the server did not start normally: %v", err)
	}
	s.Stop()

	// The same swap inside the mount: the configuration replaced by a
	// symlink to the forged file. Either the mount refuses the rename, or
	// the guard refuses the symlink.
	inMount := filepath.Join(h.mnt, "protected", h.guardCfg)
	forgedFile := filepath.Join(dir, "forged.json")
	os.WriteFile(forgedFile, forged, 0o644)
	if err := os.Rename(inMount, inMount+".orig"); err != nil {
		t.Logf("the mount refuses renaming the configuration: %v", err)
		return
	}
	defer func() {
		os.Remove(inMount)
		if err := os.Rename(inMount+".orig", inMount); err != nil {
			t.Fatalf("restore the configuration: %v", err)
		}
	}()
	if err := os.Symlink(forgedFile, inMount); err != nil {
		t.Logf("the mount refuses a symlink in @protected: %v", err)
		return
	}
	if s, err := h.start(wrapper, nil, "--init-file="+evil); err == nil {
		s.Stop()
		t.Fatal("the guard started the server with its configuration replaced by a symlink")
	}
}

// attackForgedDatadir: a fresh datadir whose root has no password, with
// the real user database and the real mysql/*.ibd linked in, started
// through the guard with InnoDB pointed at the real system tablespace and
// redo log.
func (h *hardenEnv) attackForgedDatadir(t *testing.T, wrapper string) {
	forged := filepath.Join(h.dir, "forged")
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+forged, "--user=mysql", "--basedir=/usr",
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(h.datadir, "shop"), filepath.Join(forged, "shop")); err != nil {
		t.Fatal(err)
	}
	ibds, _ := filepath.Glob(filepath.Join(h.datadir, "mysql", "*.ibd"))
	if len(ibds) == 0 {
		t.Fatal("no mysql/*.ibd in the real datadir")
	}
	for _, f := range ibds {
		dst := filepath.Join(forged, "mysql", filepath.Base(f))
		os.Remove(dst)
		os.Symlink(f, dst)
	}
	before, _ := os.ReadFile(h.audit)
	variants := [][]string{
		{"--datadir=" + forged, "--innodb-data-home-dir=" + h.datadir, "--innodb-log-group-home-dir=" + h.datadir},
		{"-h", forged, "--innodb_data_home_d=" + h.datadir, "--innodb-log-group-home-dir", h.datadir},
		{"--loose-datad=" + forged, "--innodb-data-home-dir=" + h.datadir, "--innodb-log-group-home-dir=" + h.datadir},
	}
	for _, args := range variants {
		s, err := h.start(wrapper, nil, args...)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, qerr := s.Client(ctx, "SELECT v FROM shop.t")
			cancel()
			s.Stop()
			if qerr == nil && strings.Contains(out, "before-harden") {
				t.Fatalf("%v: a passwordless root read the real rows through a forged datadir", args)
			}
			t.Fatalf("%v: the guard started the server on a forged datadir (%v %q)", args, qerr, out)
		}
	}
	// Through an option file too.
	cnf := filepath.Join(h.dir, "forged.cnf")
	os.WriteFile(cnf, []byte("[mysqld]\ndatadir="+forged+"\ninnodb_data_home_dir="+h.datadir+"\n"), 0o644)
	if s, err := h.start(wrapper, []string{"--defaults-file=" + cnf}); err == nil {
		s.Stop()
		t.Fatal("the guard started the server on a datadir from an option file")
	}
	after, _ := os.ReadFile(h.audit)
	if n := strings.Count(string(after[len(before):]), `"decision":"guard-refused"`); n < len(variants)+1 {
		t.Fatalf("refusals logged: %d, want %d\n%s", n, len(variants)+1, after[len(before):])
	}
	// The genuine start still works.
	s, err := h.start(wrapper, nil)
	if err != nil {
		t.Fatalf("start after the attack: %v", err)
	}
	defer s.Stop()
	if err := login(s, "app", "App-Pw-1"); err != nil {
		t.Fatal(err)
	}
}

// attackOutsideDatadir: another directory encrypted into @mysql is not
// readable through the hardened server (LOAD_FILE), because the rule is
// bound to the datadir.
func (h *hardenEnv) attackOutsideDatadir(t *testing.T, wrapper string) {
	other := filepath.Join(h.root, "srv", "other")
	os.MkdirAll(other, 0o755)
	os.Chmod(filepath.Dir(other), 0o755)
	os.WriteFile(filepath.Join(other, "secret.txt"), []byte("outside-marker"), 0o644)
	h.ms(0, append([]string{"encrypt", "@mysql", other}, h.creds()...)...)
	defer h.ms(0, append([]string{"decrypt", "@mysql", other}, h.creds()...)...)
	s, err := h.start(wrapper, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Client(ctx, "SELECT IFNULL(LOAD_FILE('"+filepath.Join(other, "secret.txt")+"'), 'not-read')")
	if err != nil {
		t.Fatalf("LOAD_FILE: %v %s", err, out)
	}
	if strings.Contains(out, "outside-marker") {
		t.Fatal("the hardened server read a file in @mysql outside its datadir")
	}
	if !strings.Contains(out, "not-read") {
		t.Fatalf("LOAD_FILE: %q", out)
	}
	// The server reads its own datadir.
	out, err = s.Client(ctx, "SELECT COUNT(*) FROM shop.t")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("datadir read: %q %v", out, err)
	}
}
