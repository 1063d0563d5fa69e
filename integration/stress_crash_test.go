package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// crashState is what the workloads of one crash run confirmed before the
// daemon died: the invariants checked after the remount.
type crashState struct {
	mu        sync.Mutex
	files     map[string][]byte // created, fsynced, never changed again
	logs      map[string][]byte // appended with fsync: at least this prefix
	renamed   map[string][2]string
	renamedB  map[string][]byte
	versions  map[string]map[string]bool // name -> every content it may hold
	rules     []string                   // rules whose `acl add` returned 0
	inplace   string                     // a directory under an encrypt move
	inBefore  map[string]entry
	ops       int
	opsByKind map[string]int
}

func (c *crashState) op(kind string) {
	c.mu.Lock()
	c.ops++
	c.opsByKind[kind]++
	c.mu.Unlock()
}

// killDaemon sends SIGKILL to the daemon and waits until it is gone.
func killDaemon(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	for i := 0; i < 500; i++ {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("daemon %d still alive 5 s after SIGKILL", pid)
}

// TestStressCrash kills the daemon with SIGKILL at random moments while
// files are written with fsync, extended with large writes (an fsync per
// MiB), renamed (also over another file, the atomic replace pattern),
// moved into the store by `encrypt`, and rules are added; after each kill it mounts again and checks that nothing
// committed is lost, every file reads, the rules load and the move
// journal is empty. Short: 8 kills; long: 80.
func TestStressCrash(t *testing.T) {
	level := stressLevel(t)
	start := time.Now()
	dir := t.TempDir()
	e, secrets := newStressEnv(t, dir, filepath.Join(dir, "store"))
	m := mountVolume(t, e, nil)
	self, _ := os.Executable()
	m.aclAdd("ALLOW @mysql * " + self)
	marker := "CRASHMARK-" + randHex(8)
	secrets = append(secrets, marker)
	// Files moved by encrypt are plaintext outside the store before and
	// after (decrypt puts them back): their marker is looked for in the
	// store only.
	moveMarker := "MOVEMARK-" + randHex(8)
	leaks := watchLeaks(secrets...)
	data := filepath.Join(m.mnt, "mysql")
	journal := filepath.Join(m.store, "ms.journal")
	scenarios := []string{"writes", "renames", "inplace", "rules", "appends"}
	if v := os.Getenv("MYSECURE_STRESS_SCENARIOS"); v != "" {
		scenarios = strings.Split(v, ",")
	}
	runs := pick(level, 8, 80)
	var kinds = map[string]int{}
	totalOps := 0
	committed := map[string]bool{} // files holding confirmed data, all runs
	for run := 0; run < runs; run++ {
		sc := scenarios[run%len(scenarios)]
		c := &crashState{files: map[string][]byte{}, logs: map[string][]byte{}, renamed: map[string][2]string{},
			renamedB: map[string][]byte{}, versions: map[string]map[string]bool{}, opsByKind: map[string]int{}}
		rd := filepath.Join(data, fmt.Sprintf("run%03d", run))
		if err := os.Mkdir(rd, 0o755); err != nil {
			t.Fatal(err)
		}
		pid := m.daemonPid()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		delay := time.Duration(50+rand.IntN(1200)) * time.Millisecond
		switch sc {
		case "writes":
			for g := 0; g < 2; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					crashWriter(c, rd, g, marker, stop)
				}()
			}
		case "appends":
			wg.Add(1)
			go func() {
				defer wg.Done()
				crashAppender(c, rd, marker, stop)
			}()
		case "renames":
			crashRenamesSetup(t, c, rd, marker)
			wg.Add(1)
			go func() {
				defer wg.Done()
				crashRenamer(c, rd, marker, stop)
			}()
		case "inplace":
			src := filepath.Join(dir, fmt.Sprintf("move%03d", run))
			os.MkdirAll(filepath.Join(src, "sub"), 0o755)
			for i := 0; i < 24; i++ {
				os.WriteFile(filepath.Join(src, "sub", fmt.Sprintf("f%02d", i)), pattern(moveMarker+src+strconv.Itoa(i), 256<<10+i*999), 0o640)
			}
			c.inplace, c.inBefore = src, snapshot(t, src)
			enc := m.cmd(append([]string{"encrypt", "@mysql", src}, m.creds()...)...)
			enc.Stdout, enc.Stderr = io.Discard, io.Discard
			if err := enc.Start(); err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); enc.Wait() }()
			delay = time.Duration(rand.IntN(600)) * time.Millisecond
		case "rules":
			// An acl add pays the KDF and a CLI start: kill later.
			delay = time.Duration(300+rand.IntN(2500)) * time.Millisecond
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := fmt.Sprintf("ALLOW @mysql run%03d/r%d/* /usr/bin/cat --user=65534", run, i)
					if err := m.cmd(append([]string{"acl", "add", r}, m.creds()...)...).Run(); err != nil {
						return
					}
					c.mu.Lock()
					c.rules = append(c.rules, r)
					c.mu.Unlock()
					c.op("acl add")
				}
			}()
		}
		time.Sleep(delay)
		killDaemon(t, pid)
		close(stop)
		wg.Wait()

		// Mount again: the dead mount is cleared, a move is recovered.
		m.ms(0, append([]string{"mount"}, m.creds()...)...)
		waitEmpty(t, journal)
		var st struct {
			DenyAll     string `json:"deny_all"`
			RulesLoaded bool   `json:"rules_loaded"`
		}
		if err := json.Unmarshal([]byte(m.ms(0, "status", "--json")), &st); err != nil || !st.RulesLoaded || st.DenyAll != "" {
			t.Fatalf("run %d (%s): after the remount rules are not loaded: %+v %v", run, sc, st, err)
		}
		checkCrash(t, m, c, rd, run, sc)
		for p := range c.files {
			committed[p] = true
		}
		for p := range c.logs {
			committed[p] = true
		}
		for _, names := range c.renamed {
			committed[names[0]], committed[names[1]] = true, true
		}
		for p := range c.versions {
			committed[p] = true
		}
		kinds[sc]++
		totalOps += c.ops
		t.Logf("run %d: %s, killed after %v, %d operations confirmed before the kill %v: all there", run, sc, delay, c.ops, c.opsByKind)
	}
	// Every file on the mount reads. A file that was being written when
	// the daemon died may have been left with a torn last block (the
	// kernel cut the daemon's store write short): the mount cuts it back
	// to its whole blocks when the file is first opened, and records the
	// cut in the audit log (content.RepairTail). Before that repair such a
	// file read as EIO from the torn block on, or did not open at all.
	unreadable := 0
	filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if _, err := os.ReadFile(p); err == nil {
			return nil
		}
		unreadable++
		t.Errorf("unreadable after the crashes: %s (confirmed data: %v): %d bytes, blocks failing at %v (-1: open fails)", p, committed[p], fi.Size(), badBlocks(p, fi.Size()))
		return nil
	})
	cuts := auditRepairs(t, m.audit)
	for _, r := range cuts {
		t.Logf("torn end cut on open: %s", r)
	}
	t.Logf("crash points: %d kills %v, %d confirmed operations checked, %d torn file ends cut on open, %d files unreadable", runs, kinds, totalOps, len(cuts), unreadable)
	m.ms(0, "umount")
	leaks.finish(t)
	scanLeaks(t, m, start, secrets...)
	scanStore(t, m.store, moveMarker)
}

// crashWriter creates files (write, fsync, close: then committed) and
// appends to a log with fsync after each record, until stop or an error.
func crashWriter(c *crashState, dir string, g int, marker string, stop chan struct{}) {
	logName := filepath.Join(dir, fmt.Sprintf("log%d", g))
	lf, err := os.OpenFile(logName, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer lf.Close()
	var logData []byte
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		rec := pattern(fmt.Sprintf("%s-log%d-%d", marker, g, i), 100+rand.IntN(9000))
		if _, err := lf.Write(rec); err != nil {
			return
		}
		if err := lf.Sync(); err != nil {
			return
		}
		logData = append(logData, rec...)
		c.mu.Lock()
		c.logs[logName] = append([]byte(nil), logData...)
		c.mu.Unlock()
		c.op("log append+fsync")

		p := filepath.Join(dir, fmt.Sprintf("w%d-%04d", g, i))
		b := pattern(marker+p, rand.IntN(200<<10))
		if writeFileSync(p, b) != nil {
			return
		}
		c.mu.Lock()
		c.files[p] = b
		c.mu.Unlock()
		c.op("create+fsync")
	}
}

// crashAppender extends files with large writes and an fsync after each
// MiB (each fsynced prefix is recorded as a log's), until stop or an
// error. Most of the daemon's time then goes to extending store writes, so
// a kill often lands inside one and leaves a torn last block, which the
// next open must cut without touching the fsynced prefix.
func crashAppender(c *crashState, dir, marker string, stop chan struct{}) {
	for n := 0; ; n++ {
		p := filepath.Join(dir, fmt.Sprintf("big%02d", n))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return
		}
		var data []byte
		for len(data) < 16<<20 {
			select {
			case <-stop:
				f.Close()
				return
			default:
			}
			chunk := pattern(fmt.Sprintf("%s-%s-%d", marker, p, len(data)), 256<<10+rand.IntN(4096))
			if _, err := f.Write(chunk); err != nil {
				f.Close()
				return
			}
			data = append(data, chunk...)
			if len(data)>>20 == (len(data)-len(chunk))>>20 {
				continue
			}
			if f.Sync() != nil {
				f.Close()
				return
			}
			c.mu.Lock()
			c.logs[p] = data[:len(data):len(data)] // later appends do not change it
			c.mu.Unlock()
			c.op("append+fsync")
		}
		f.Close()
	}
}

func fsyncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func crashRenamesSetup(t *testing.T, c *crashState, dir, marker string) {
	t.Helper()
	for i := 0; i < 8; i++ {
		a := filepath.Join(dir, fmt.Sprintf("r%d.a", i))
		b := pattern(marker+a, 5000+i*3000)
		if err := writeFileSync(a, b); err != nil {
			t.Fatal(err)
		}
		c.renamed[a] = [2]string{a, filepath.Join(dir, fmt.Sprintf("r%d.b", i))}
		c.renamedB[a] = b
	}
	cfg := filepath.Join(dir, "cfg")
	v := pattern(marker+"cfg-v0", 20000)
	if err := writeFileSync(cfg, v); err != nil {
		t.Fatal(err)
	}
	fsyncDir(dir)
	c.versions[cfg] = map[string]bool{string(v): true}
}

// crashRenamer renames files back and forth and replaces cfg atomically
// (write cfg.tmp, fsync, rename over cfg, fsync the directory).
func crashRenamer(c *crashState, dir, marker string, stop chan struct{}) {
	cfg := filepath.Join(dir, "cfg")
	for i := 1; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		for _, names := range c.renamed {
			from, to := names[0], names[1]
			if i%2 == 0 {
				from, to = to, from
			}
			if os.Rename(from, to) != nil {
				return
			}
			c.op("rename")
		}
		if fsyncDir(dir) != nil {
			return
		}
		v := pattern(fmt.Sprintf("%scfg-v%d", marker, i), 20000+i)
		// The new version may be there from the moment the rename starts.
		c.mu.Lock()
		c.versions[cfg][string(v)] = true
		c.mu.Unlock()
		if writeFileSync(cfg+".tmp", v) != nil || os.Rename(cfg+".tmp", cfg) != nil || fsyncDir(dir) != nil {
			return
		}
		c.op("replace cfg")
	}
}

// checkCrash checks one run's invariants after the remount.
func checkCrash(t *testing.T, m *mountEnv, c *crashState, dir string, run int, sc string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, b := range c.files {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, b) {
			t.Errorf("run %d (%s): committed file %s: %d bytes %v, want %d", run, sc, p, len(got), err, len(b))
		}
	}
	for p, b := range c.logs {
		// The fsynced prefix, read as such: an unsynced record after it
		// may have been cut (see TestStressCrash).
		got := make([]byte, len(b))
		k, err := 0, error(nil)
		if f, oerr := os.Open(p); oerr != nil {
			err = oerr
		} else {
			k, err = f.ReadAt(got, 0)
			f.Close()
		}
		if k < len(b) || !bytes.Equal(got, b) {
			t.Errorf("run %d (%s): log %s: read %d of the %d fsynced bytes (%v), equal %v", run, sc, p, k, len(b), err, bytes.Equal(got[:k], b[:k]))
		}
	}
	for key, names := range c.renamed {
		a, errA := os.ReadFile(names[0])
		b, errB := os.ReadFile(names[1])
		switch {
		case errA == nil && errB == nil:
			t.Errorf("run %d: %s exists under both names", run, key)
		case errA != nil && errB != nil:
			t.Errorf("run %d: %s lost under both names: %v / %v", run, key, errA, errB)
		case errA == nil && !bytes.Equal(a, c.renamedB[key]), errB == nil && !bytes.Equal(b, c.renamedB[key]):
			t.Errorf("run %d: %s changed by renames", run, key)
		}
	}
	for p, vs := range c.versions {
		got, err := os.ReadFile(p)
		if err != nil || !vs[string(got)] {
			t.Errorf("run %d: %s (replaced by rename) is none of its %d versions: %d bytes %v", run, p, len(vs), len(got), err)
		}
	}
	if len(c.rules) > 0 {
		list := m.ms(0, "acl", "list")
		for _, r := range c.rules {
			// acl list prints rules as they were written.
			if !strings.Contains(list, strings.TrimPrefix(r, "ALLOW ")) {
				t.Errorf("run %d: rule added before the kill is gone: %s", run, r)
			}
		}
	}
	if c.inplace != "" {
		fi, err := os.Lstat(c.inplace)
		if err != nil {
			t.Fatalf("run %d: %s gone after the move was killed: %v", run, c.inplace, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			m.ms(0, append([]string{"decrypt", "@mysql", c.inplace}, m.creds()...)...)
			c.opsByKind["moved, decrypted back"]++
		} else {
			c.opsByKind["rolled back"]++
		}
		compareSnapshots(t, c.inBefore, snapshot(t, c.inplace))
		if left, _ := filepath.Glob(c.inplace + ".mysecure-*"); len(left) != 0 {
			t.Errorf("run %d: leftovers of the move: %v", run, left)
		}
	}
}

// TestStressCrashBackup kills the daemon with SIGKILL while it runs a
// logical backup job of a real MariaDB server, at random moments; after
// each remount the catalog has no broken entry, every backup it lists
// verifies, and the backups completed before are all still there.
func TestStressCrashBackup(t *testing.T) {
	level := stressLevel(t)
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
	start := time.Now()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	e, secrets := newStressEnv(t, dir, filepath.Join(dir, "store"))
	m := mountVolume(t, e, nil)
	s := startSandbox(t, sandbox.Options{Dir: filepath.Join(dir, "srv")})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	password := "Stress-Pw-" + randHex(10)
	rowMarker := "ROWMARK-" + randHex(8)
	secrets = append(secrets, password)
	leaks := watchLeaks(secrets...)
	// About 30 MB of poorly compressible rows: a dump takes a while.
	sql := "CREATE DATABASE shop; CREATE TABLE shop.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(1000)) ENGINE=InnoDB;" +
		"INSERT INTO shop.t (v) VALUES ('" + rowMarker + "');" +
		strings.Repeat("INSERT INTO shop.t (v) SELECT REPEAT(MD5(RAND()), 30) FROM shop.t;", 15) +
		"SET sql_log_bin=0; CREATE USER 'bk'@'localhost' IDENTIFIED BY '" + password + "'; GRANT ALL ON *.* TO 'bk'@'localhost';"
	if out, err := s.Client(ctx, sql); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(password), 0o600)
	m.ms(0, "backup", "credentials", "set", "--user", "bk", "--mysql-socket", s.Socket, "--password-file", pw)
	os.Remove(pw)

	type listing struct {
		Backups []struct {
			ID        string `json:"id"`
			StorePath string `json:"store_path"`
		} `json:"backups"`
		Broken map[string]string `json:"broken"`
	}
	list := func() listing {
		var l listing
		out := m.ms(0, "backup", "list", "--json")
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &l); err != nil {
			t.Fatalf("backup list --json: %v\n%s", err, out)
		}
		return l
	}
	t0 := time.Now()
	m.ms(0, "backup", "--databases", "shop")
	full := time.Since(t0)
	complete := map[string]bool{}
	for _, b := range list().Backups {
		complete[b.ID] = true
	}
	if len(complete) != 1 {
		t.Fatalf("after one backup the catalog has %d", len(complete))
	}
	runs := pick(level, 3, 20)
	verified := 0
	for run := 0; run < runs; run++ {
		pid := m.daemonPid()
		c := m.cmd("backup", "--databases", "shop")
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rand.Int64N(int64(full) * 11 / 10))
		time.Sleep(delay)
		killDaemon(t, pid)
		c.Wait()
		m.ms(0, append([]string{"mount"}, m.creds()...)...)
		l := list()
		if len(l.Broken) > 0 {
			t.Errorf("run %d (killed %v into a %v backup): broken entries in the catalog: %v", run, delay, full, l.Broken)
		}
		seen := map[string]bool{}
		for _, b := range l.Backups {
			seen[b.ID] = true
			if out := m.ms(0, "backup", "verify", b.ID); !strings.Contains(out, b.ID+" ok") {
				t.Errorf("run %d: verify %s: %s", run, b.ID, out)
			}
			verified++
			complete[b.ID] = true
		}
		for id := range complete {
			if !seen[id] {
				t.Errorf("run %d: backup %s, complete before, is gone", run, id)
			}
		}
		left := storeEntries(t, filepath.Dir(l.Backups[0].StorePath)) - len(l.Backups)
		t.Logf("run %d: killed %v into a backup that takes %v; catalog %d backups, all verify; %d other entries in the store's backup directory", run, delay, full, len(l.Backups), left)
	}
	m.ms(0, "backup", "--databases", "shop")
	t.Logf("backup crash points: %d kills, %d verifications", runs, verified)
	m.ms(0, "umount")
	leaks.finish(t)
	scanLeaks(t, m, start, secrets...)
	// The rows are plaintext in the server's own datadir (not on the
	// mount here), never in the store.
	scanStore(t, m.store, rowMarker)
}

// auditRepairs returns the torn file ends the daemons cut (the "repair"
// records of the audit log), one line each.
func auditRepairs(t *testing.T, audit string) []string {
	t.Helper()
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct{ Decision, File, Category, Reason string }
		if json.Unmarshal([]byte(line), &r) == nil && r.Decision == "repair" {
			out = append(out, fmt.Sprintf("@%s %s: %s", r.Category, r.File, r.Reason))
		}
	}
	return out
}

// badBlocks returns the offsets of the 4 KiB blocks of p that fail to read.
func badBlocks(p string, size int64) []int64 {
	f, err := os.Open(p)
	if err != nil {
		return []int64{-1}
	}
	defer f.Close()
	var bad []int64
	buf := make([]byte, 4096)
	for off := int64(0); off < size; off += 4096 {
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			bad = append(bad, off)
		}
	}
	return bad
}
