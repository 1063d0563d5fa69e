package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// modelFile is the expected content of one inode (shared by hard links).
type modelFile struct{ data []byte }

// opTester runs random file operations in its own directory on the mount
// and checks every read against an in-memory model of what must be there.
type opTester struct {
	t      *testing.T
	dir    string
	rng    *rand.Rand
	names  map[string]*modelFile
	held   *os.File // a descriptor kept open across renames and unlinks
	heldM  *modelFile
	marker string
	ops    map[string]int
	fail   error
}

var opNames = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

func (o *opTester) payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(o.rng.IntN(256))
	}
	// A marker the leak scan looks for in the store.
	if n > len(o.marker) {
		copy(b[o.rng.IntN(n-len(o.marker)):], o.marker)
	}
	return b
}

func (o *opTester) pickName(exist bool) (string, bool) {
	var c []string
	for _, n := range opNames {
		if _, ok := o.names[n]; ok == exist {
			c = append(c, n)
		}
	}
	if len(c) == 0 {
		return "", false
	}
	return c[o.rng.IntN(len(c))], true
}

func writeModel(m *modelFile, p []byte, off int) {
	if end := off + len(p); end > len(m.data) {
		m.data = append(m.data, make([]byte, end-len(m.data))...)
	}
	copy(m.data[off:], p)
}

func (o *opTester) failf(format string, args ...any) {
	if o.fail == nil {
		o.fail = fmt.Errorf("%s: "+format, append([]any{o.dir}, args...)...)
	}
}

// step runs one random operation.
func (o *opTester) step() {
	p := func(n string) string { return filepath.Join(o.dir, n) }
	op := []string{"create", "write", "write", "fsync-write", "truncate", "rename", "link", "unlink", "read", "read", "held"}[o.rng.IntN(11)]
	switch op {
	case "create":
		n, ok := o.pickName(false)
		if !ok {
			return
		}
		data := o.payload(o.rng.IntN(20000))
		if err := os.WriteFile(p(n), data, 0o644); err != nil {
			o.failf("create %s: %v", n, err)
			return
		}
		o.names[n] = &modelFile{data: data}
	case "write", "fsync-write":
		n, ok := o.pickName(true)
		if !ok {
			return
		}
		m := o.names[n]
		off := o.rng.IntN(len(m.data) + 9000) // past the end: a hole
		data := o.payload(1 + o.rng.IntN(16384))
		f, err := os.OpenFile(p(n), os.O_RDWR, 0)
		if err != nil {
			o.failf("open %s: %v", n, err)
			return
		}
		if _, err := f.WriteAt(data, int64(off)); err != nil {
			o.failf("write %s at %d: %v", n, off, err)
		}
		if op == "fsync-write" {
			if err := f.Sync(); err != nil {
				o.failf("fsync %s: %v", n, err)
			}
		}
		if err := f.Close(); err != nil {
			o.failf("close %s: %v", n, err)
		}
		writeModel(m, data, off)
	case "truncate":
		n, ok := o.pickName(true)
		if !ok {
			return
		}
		m := o.names[n]
		size := o.rng.IntN(2*len(m.data) + 5000)
		if err := os.Truncate(p(n), int64(size)); err != nil {
			o.failf("truncate %s to %d: %v", n, size, err)
			return
		}
		if size < len(m.data) {
			m.data = m.data[:size]
		} else {
			m.data = append(m.data, make([]byte, size-len(m.data))...)
		}
	case "rename":
		src, ok := o.pickName(true)
		if !ok {
			return
		}
		dst := opNames[o.rng.IntN(len(opNames))]
		if dst == src {
			return
		}
		if err := os.Rename(p(src), p(dst)); err != nil {
			o.failf("rename %s %s: %v", src, dst, err)
			return
		}
		// Renaming one link of an inode over another is a no-op.
		if o.names[dst] != o.names[src] {
			o.names[dst] = o.names[src]
			delete(o.names, src)
		}
	case "link":
		src, ok1 := o.pickName(true)
		dst, ok2 := o.pickName(false)
		if !ok1 || !ok2 {
			return
		}
		if err := os.Link(p(src), p(dst)); err != nil {
			o.failf("link %s %s: %v", src, dst, err)
			return
		}
		o.names[dst] = o.names[src]
	case "unlink":
		n, ok := o.pickName(true)
		if !ok {
			return
		}
		if err := os.Remove(p(n)); err != nil {
			o.failf("unlink %s: %v", n, err)
			return
		}
		delete(o.names, n)
	case "read":
		n, ok := o.pickName(true)
		if !ok {
			return
		}
		o.check(n)
	case "held":
		// Open a file and keep it; write through it later, after the
		// name may be renamed or unlinked; then read it back through it.
		if o.held == nil {
			n, ok := o.pickName(true)
			if !ok {
				return
			}
			f, err := os.OpenFile(p(n), os.O_RDWR, 0)
			if err != nil {
				o.failf("open %s to hold: %v", n, err)
				return
			}
			o.held, o.heldM = f, o.names[n]
			break
		}
		data := o.payload(1 + o.rng.IntN(8192))
		off := o.rng.IntN(len(o.heldM.data) + 100)
		if _, err := o.held.WriteAt(data, int64(off)); err != nil {
			o.failf("write through held descriptor: %v", err)
		}
		writeModel(o.heldM, data, off)
		got := make([]byte, len(o.heldM.data)+10)
		k, err := o.held.ReadAt(got, 0)
		if (err != nil && k != len(o.heldM.data)) || !bytes.Equal(got[:k], o.heldM.data) {
			o.failf("held descriptor reads %d bytes (%v), model has %d, equal=%v", k, err, len(o.heldM.data), bytes.Equal(got[:k], o.heldM.data))
		}
		if o.rng.IntN(3) == 0 {
			o.closeHeld()
		}
	}
	o.ops[op]++
}

func (o *opTester) closeHeld() {
	if o.held != nil {
		if err := o.held.Close(); err != nil {
			o.failf("close held: %v", err)
		}
		o.held, o.heldM = nil, nil
	}
}

// check reads name and compares it with the model.
func (o *opTester) check(n string) {
	got, err := os.ReadFile(filepath.Join(o.dir, n))
	want := o.names[n].data
	if err != nil {
		o.failf("read %s: %v", n, err)
		return
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		o.failf("read %s: %d bytes, model %d, first difference at %d", n, len(got), len(want), i)
	}
}

// checkAll compares the directory listing and every file with the model.
func (o *opTester) checkAll() {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		o.failf("readdir: %v", err)
		return
	}
	var got, want []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	for n := range o.names {
		want = append(want, n)
		o.check(n)
	}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		o.failf("directory has %v, model %v", got, want)
	}
}

// TestStressSoak runs fio writers with crc32c verification and
// model-checked random operation testers against one mount for 60 s
// (short) or 10 min (long), sampling the daemon's RSS, threads,
// descriptors and goroutines; then it scans for leaks.
func TestStressSoak(t *testing.T) {
	level := stressLevel(t)
	testenv.RequireCommands(t, "fio")
	dur := stressDuration(t, pick(level, 60*time.Second, 10*time.Minute))
	start := time.Now()
	dir := t.TempDir()
	e, secrets := newStressEnv(t, dir, filepath.Join(dir, "store"))
	m := mountVolume(t, e, nil)
	marker := "SOAKMARK-" + randHex(8)
	secrets = append(secrets, marker)
	leaks := watchLeaks(secrets...)
	fio, _ := exec.LookPath("fio")
	self, _ := os.Executable()
	m.aclAdd("ALLOW @mysql * " + fio)
	m.aclAdd("ALLOW @mysql * " + self)
	pid := m.daemonPid()
	before := m.sampleDaemon(pid, start)

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup

	// fio: buffered random writes of 4 KiB, of mixed sizes, and O_DIRECT,
	// each verifying what it wrote (verify_backlog reads back as it goes).
	fioDir := filepath.Join(m.mnt, "mysql", "fio")
	if err := os.MkdirAll(fioDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var fioOut []byte
	var fioErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := exec.Command(fio, "--directory="+fioDir, "--ioengine=psync", "--size=16m",
			"--verify=crc32c", "--verify_backlog=128", "--verify_fatal=1", "--do_verify=1", "--verify_state_save=0",
			"--time_based", fmt.Sprintf("--runtime=%ds", int(dur.Seconds())), "--output-format=json",
			"--name=rand4k", "--rw=randwrite", "--bs=4k", "--fsync=64",
			"--name=mixed", "--rw=randwrite", "--bsrange=512-64k", "--numjobs=1",
			"--name=direct", "--rw=randwrite", "--bs=16k", "--direct=1",
			"--name=seq", "--rw=write", "--bs=128k", "--fdatasync=16")
		fioOut, fioErr = c.Output()
	}()

	// Model-checked testers, each in its own directory.
	testers := make([]*opTester, pick(level, 3, 4))
	var totalOps atomic.Int64
	for i := range testers {
		d := filepath.Join(m.mnt, "mysql", fmt.Sprintf("model%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		o := &opTester{t: t, dir: d, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i))),
			names: map[string]*modelFile{}, marker: marker, ops: map[string]int{}}
		testers[i] = o
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ctx.Err() == nil && o.fail == nil; n++ {
				o.step()
				totalOps.Add(1)
				if n%300 == 0 {
					o.checkAll()
				}
			}
			o.closeHeld()
			o.checkAll()
		}()
	}

	// Samples every 1/30 of the run.
	var samples []resources
	tick := time.NewTicker(dur / 30)
	for loop := true; loop; {
		select {
		case <-ctx.Done():
			loop = false
		case <-tick.C:
			samples = append(samples, m.sampleDaemon(pid, start))
		}
	}
	tick.Stop()
	wg.Wait()

	var ops = map[string]int{}
	for _, o := range testers {
		if o.fail != nil {
			t.Errorf("model tester: %v", o.fail)
		}
		for k, v := range o.ops {
			ops[k] += v
		}
	}
	t.Logf("model testers: %d operations in %v: %v", totalOps.Load(), dur, ops)
	if totalOps.Load() < 100 {
		t.Errorf("only %d operations: the soak did not run", totalOps.Load())
	}

	// fio: exit status, per job error and verified bytes.
	if fioErr != nil {
		var ee *exec.ExitError
		if errors.As(fioErr, &ee) {
			t.Errorf("fio: %v\n%s", fioErr, ee.Stderr)
		} else {
			t.Errorf("fio: %v", fioErr)
		}
	}
	var res struct {
		Jobs []struct {
			Jobname string `json:"jobname"`
			Error   int    `json:"error"`
			Read    struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"read"`
			Write struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if i := bytes.IndexByte(fioOut, '{'); i < 0 || json.Unmarshal(fioOut[i:], &res) != nil || len(res.Jobs) != 4 {
		t.Fatalf("fio output is not the JSON of 4 jobs:\n%s", fioOut)
	}
	for _, j := range res.Jobs {
		t.Logf("fio %s: wrote %d MiB, read back and verified %d MiB, error %d", j.Jobname, j.Write.IOBytes>>20, j.Read.IOBytes>>20, j.Error)
		if j.Error != 0 || j.Write.IOBytes == 0 || j.Read.IOBytes == 0 {
			t.Errorf("fio job %s: error %d, wrote %d, verified %d bytes", j.Jobname, j.Error, j.Write.IOBytes, j.Read.IOBytes)
		}
	}

	// The daemon's footprint: goroutines and descriptors back to where
	// they were once the load is gone; RSS no growing trend.
	time.Sleep(2 * time.Second)
	after := m.sampleDaemon(pid, start)
	samples = append(samples, after)
	for _, s := range samples {
		t.Logf("daemon at %v: rss %d KiB, threads %d, fds %d (store %d), goroutines %d", s.At, s.RSSKiB, s.Threads, s.FDs, s.StoreFDs, s.Goroutines)
	}
	t.Logf("daemon before: %+v after: %+v", before, after)
	if after.Goroutines > before.Goroutines+8 {
		t.Errorf("daemon goroutines %d after the load, %d before", after.Goroutines, before.Goroutines)
	}
	// The daemon keeps a /proc/PID descriptor per identified process (at
	// most 1024, acl.maxProcEntries) and go-fuse keeps splice pipes: only
	// store descriptors must come back to where they were.
	if after.StoreFDs > before.StoreFDs+2 || after.FDs > before.FDs+1024+64 {
		t.Errorf("daemon descriptors %d after the load, %d before:\n%s", after.FDs, before.FDs, fdTargets(pid))
	}
	if len(samples) >= 10 {
		early, late := maxRSS(samples[len(samples)/5:len(samples)*2/5]), maxRSS(samples[len(samples)*4/5:])
		t.Logf("daemon RSS: max %d KiB in the 2nd fifth of the run, %d KiB in the last", early, late)
		if late > early*3/2+32<<10 {
			t.Errorf("daemon RSS grows: %d KiB early, %d KiB late", early, late)
		}
	} else {
		t.Errorf("only %d resource samples", len(samples))
	}

	// Everything the testers left reads back after a remount.
	m.ms(0, "umount")
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	for _, o := range testers {
		o.checkAll()
		if o.fail != nil {
			t.Errorf("after remount: %v", o.fail)
		}
	}
	m.ms(0, "umount")
	rounds, pf := leaks.finish(t)
	n := scanLeaks(t, m, start, secrets...)
	t.Logf("leak scan: %d /proc rounds (%d cmdline/environ reads), %d files", rounds, pf, n)
}

func maxRSS(s []resources) int {
	x := 0
	for _, r := range s {
		x = max(x, r.RSSKiB)
	}
	return x
}

// fdTargets lists what a process's descriptors point to.
func fdTargets(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" -> "+l)
	}
	return strings.Join(out, "\n")
}
