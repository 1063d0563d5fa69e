package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mysecure/mysecure/internal/testenv"
)

// faultLayer is a go-fuse loopback file system that the store lives on; it
// fails chosen calls on request. It runs in the test process, the daemon
// reaches it through the kernel like any file system.
type faultLayer struct {
	mode     atomic.Int32 // one of the fault* constants
	every    atomic.Int32 // inject on every Nth matching call (1 = all)
	calls    atomic.Int64
	injected atomic.Int64
	mu       sync.Mutex
	log      []string // what was injected where, for failure messages
}

const (
	faultNone int32 = iota
	faultWriteEIO
	faultWriteENOSPC
	faultShortWrite
	faultFsyncEIO
)

var faultNames = map[int32]string{faultWriteEIO: "write EIO", faultWriteENOSPC: "write ENOSPC", faultShortWrite: "short write", faultFsyncEIO: "fsync EIO"}

func (l *faultLayer) hit(kind int32) bool {
	if l.mode.Load() != kind {
		return false
	}
	if n := l.calls.Add(1); n%int64(max(1, l.every.Load())) != 0 {
		return false
	}
	l.injected.Add(1)
	return true
}

type faultNode struct {
	*fs.LoopbackNode
	l *faultLayer
}

// WrapChild makes every node the loopback creates a faultNode.
func (n *faultNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if ln, ok := ops.(*fs.LoopbackNode); ok {
		return &faultNode{LoopbackNode: ln, l: n.l}
	}
	return ops
}

type faultFile struct {
	*fs.LoopbackFile
	l    *faultLayer
	path string
}

func (f *faultFile) note(what string, off int64, n int) {
	f.l.mu.Lock()
	f.l.log = append(f.l.log, fmt.Sprintf("%s %s at %d len %d", what, f.path, off, n))
	f.l.mu.Unlock()
}

func (f *faultFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	switch {
	case f.l.hit(faultWriteEIO):
		f.note("EIO", off, len(data))
		return 0, syscall.EIO
	case f.l.hit(faultWriteENOSPC):
		f.note("ENOSPC", off, len(data))
		return 0, syscall.ENOSPC
	case len(data) > 1 && f.l.hit(faultShortWrite):
		// Write half and say so: a correct caller writes the rest.
		return f.LoopbackFile.Write(ctx, data[:len(data)/2], off)
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if f.l.hit(faultFsyncEIO) {
		f.note("fsync EIO", 0, 0)
		return syscall.EIO
	}
	return f.LoopbackFile.Fsync(ctx, flags)
}

// PassthroughFd: never hand the kernel the backing descriptor, or writes
// would bypass the faults.
func (f *faultFile) PassthroughFd() (int, bool) { return -1, false }

func (n *faultNode) wrap(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &faultFile{LoopbackFile: lf, l: n.l, path: n.EmbeddedInode().Path(nil)}
	}
	return fh
}

func (n *faultNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	return n.wrap(fh), fl, errno
}

func (n *faultNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, n.wrap(fh), fl, errno
}

var (
	_ fs.NodeOpener          = (*faultNode)(nil)
	_ fs.NodeCreater         = (*faultNode)(nil)
	_ fs.NodeWrapChilder     = (*faultNode)(nil)
	_ fs.FileWriter          = (*faultFile)(nil)
	_ fs.FileFsyncer         = (*faultFile)(nil)
	_ fs.FilePassthroughFder = (*faultFile)(nil)
)

// mountFaultLayer serves backing at mnt through a faultLayer.
func mountFaultLayer(t *testing.T, backing, mnt string) *faultLayer {
	t.Helper()
	l := &faultLayer{}
	l.every.Store(1)
	lr, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		t.Fatal(err)
	}
	rootNode := &faultNode{LoopbackNode: lr.(*fs.LoopbackNode), l: l}
	srv, err := fs.Mount(mnt, rootNode, &fs.Options{MountOptions: fuse.MountOptions{FsName: "mysecure-faults", Name: "faults"}})
	if err != nil {
		t.Fatalf("fault layer mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return l
}

// pattern is the content of a test file: its name repeated with a counter.
func pattern(name string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s:%08d;", name, i)
	}
	return b.Bytes()[:n]
}

// writeFile writes data to p with write, fsync, close and returns the
// first error.
func writeFileSync(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

// checkNoWrongPlaintext reads p, written with want and failed: it may
// fail to read, or read a prefix-sized file whose every 4 KiB block is
// either want's or zeros (a block never written); any other byte is wrong
// plaintext.
func checkNoWrongPlaintext(t *testing.T, p string, want []byte) (readErr bool) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		return true
	}
	if len(got) > len(want) {
		t.Errorf("%s: %d bytes, more than the %d written", p, len(got), len(want))
		return false
	}
	zero := make([]byte, 4096)
	for off := 0; off < len(got); off += 4096 {
		end := min(off+4096, len(got))
		if !bytes.Equal(got[off:end], want[off:end]) && !bytes.Equal(got[off:end], zero[:end-off]) {
			t.Errorf("%s: wrong plaintext in the block at %d", p, off)
			return false
		}
	}
	return false
}

// TestStressFaultLayer puts the store on a FUSE file system that fails
// writes (EIO, ENOSPC), writes short, or fails fsync: every injected error
// reaches the writer, no file reads wrong plaintext, the daemon stays up,
// and after the fault is gone every file written before it reads back,
// also after a remount.
func TestStressFaultLayer(t *testing.T) {
	level := stressLevel(t)
	start := time.Now()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	backing, lower := filepath.Join(dir, "backing"), filepath.Join(dir, "lower")
	os.Mkdir(backing, 0o700)
	os.Mkdir(lower, 0o700)
	l := mountFaultLayer(t, backing, lower)
	e, secrets := newStressEnv(t, dir, filepath.Join(lower, "store"))
	m := mountVolume(t, e, nil)
	self, _ := os.Executable()
	m.aclAdd("ALLOW @mysql * " + self)
	pid := m.daemonPid()
	data := filepath.Join(m.mnt, "mysql")
	marker := "FAULTMARK-" + randHex(8)
	secrets = append(secrets, marker)

	// Before any fault: files written and fsynced.
	before := map[string][]byte{}
	for i := 0; i < pick(level, 12, 60); i++ {
		n := fmt.Sprintf("before-%03d", i)
		b := pattern(marker+n, 1000+i*7919)
		if err := writeFileSync(filepath.Join(data, n), b); err != nil {
			t.Fatalf("%s before the fault: %v", n, err)
		}
		before[n] = b
	}

	rounds := pick(level, 6, 40)
	var surfaced, readErrs, injectedTotal, retried int64
	for _, mode := range []int32{faultWriteEIO, faultWriteENOSPC, faultShortWrite, faultFsyncEIO} {
		name := faultNames[mode]
		for r := 0; r < rounds; r++ {
			every := int32(1 + rand.IntN(3))
			l.every.Store(every)
			l.calls.Store(0)
			inj := l.injected.Load()
			n := fmt.Sprintf("during-%d-%03d", mode, r)
			b := pattern(marker+n, 4096*(1+rand.IntN(8))+rand.IntN(4096))
			l.mode.Store(mode)
			err := writeFileSync(filepath.Join(data, n), b)
			l.mode.Store(faultNone)
			fired := l.injected.Load() - inj
			injectedTotal += fired
			switch {
			case mode == faultShortWrite:
				// Short writes are legal: the daemon must finish them.
				if err != nil {
					t.Errorf("%s (%d injected): the write failed: %v", name, fired, err)
				} else if got, rerr := os.ReadFile(filepath.Join(data, n)); rerr != nil || !bytes.Equal(got, b) {
					t.Errorf("%s: reads back wrong: %v", name, rerr)
				}
			case fired > 0 && err == nil:
				// The kernel splits a large store write into several
				// FUSE writes; when a later one fails it returns a short
				// count, and the daemon writes the rest again. That is
				// fine if, and only if, the file is then exactly right.
				got, rerr := os.ReadFile(filepath.Join(data, n))
				if rerr == nil && bytes.Equal(got, b) {
					retried++
					break
				}
				l.mu.Lock()
				t.Errorf("%s: %d errors injected under %s, the writer saw none (every %d); reads back equal %v (%v); injected: %v", name, fired, n, every, bytes.Equal(got, b), rerr, l.log[len(l.log)-int(fired):])
				l.mu.Unlock()
			case fired > 0:
				surfaced++
				if checkNoWrongPlaintext(t, filepath.Join(data, n), b) {
					readErrs++
				}
			case err != nil:
				t.Errorf("%s: no fault fired but the write failed: %v", name, err)
			}
		}
		if m.daemonPid() != pid {
			t.Fatalf("the daemon changed after %s", name)
		}
	}
	t.Logf("faults: %d injected store errors, %d writes failed as they should (%d of those files then failed to read, the others held no wrong byte), %d writes recovered by the daemon's retry of a short store write and read back exactly, %d rounds per kind", injectedTotal, surfaced, readErrs, retried, rounds)
	if injectedTotal == 0 || surfaced == 0 {
		t.Fatal("no fault was injected: the layer is not under the store")
	}

	// The fault is gone: new writes work, old files read back, also after
	// a remount.
	if err := writeFileSync(filepath.Join(data, "after"), pattern(marker+"after", 50000)); err != nil {
		t.Fatalf("write after the fault: %v", err)
	}
	before["after"] = pattern(marker+"after", 50000)
	verify := func(when string) {
		for n, b := range before {
			got, err := os.ReadFile(filepath.Join(data, n))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: %s reads %d bytes, %v; want %d", when, n, len(got), err, len(b))
			}
		}
	}
	verify("after the faults")
	m.ms(0, "umount")
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	verify("after a remount")
	m.ms(0, "umount")
	scanLeaks(t, m, start, secrets...)
}

// TestStressENOSPC runs the store on a small ext4 file system on a loop
// device and fills it through the mount: the writer gets ENOSPC, what was
// acknowledged reads back, nothing reads wrong, the daemon stays up, and
// after space is freed everything written before reads back after a
// remount.
func TestStressENOSPC(t *testing.T) {
	level := stressLevel(t)
	testenv.RequireCommands(t, "mkfs.ext4", "mount", "umount", "losetup", "truncate")
	start := time.Now()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	img, disk := filepath.Join(dir, "disk.img"), filepath.Join(dir, "disk")
	os.Mkdir(disk, 0o700)
	for _, c := range [][]string{{"truncate", "-s", "48M", img}, {"mkfs.ext4", "-q", "-F", "-m", "0", img}, {"mount", "-o", "loop", img, disk}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	t.Cleanup(func() {
		if err := exec.Command("umount", disk).Run(); err != nil {
			exec.Command("umount", "-l", disk).Run()
		}
	})
	e, secrets := newStressEnv(t, dir, filepath.Join(disk, "store"))
	m := mountVolume(t, e, nil)
	self, _ := os.Executable()
	m.aclAdd("ALLOW @mysql * " + self)
	pid := m.daemonPid()
	data := filepath.Join(m.mnt, "mysql")
	marker := "NOSPCMARK-" + randHex(8)
	secrets = append(secrets, marker)

	before := map[string][]byte{}
	for i := 0; i < 16; i++ {
		n := fmt.Sprintf("before-%02d", i)
		b := pattern(marker+n, 100000+i*4099)
		if err := writeFileSync(filepath.Join(data, n), b); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		before[n] = b
	}

	for round := 0; round < pick(level, 2, 10); round++ {
		// Fill: 64 KiB writes until one fails (at most twice the disk).
		fill := filepath.Join(data, "fill")
		f, err := os.OpenFile(fill, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		want := pattern(marker+"fill", 96<<20)
		acked := 0
		var werr error
		for acked+65536 <= len(want) {
			k, err := f.Write(want[acked : acked+65536])
			acked += k
			if err != nil {
				werr = err
				break
			}
		}
		if werr == nil {
			werr = f.Sync()
		}
		f.Close()
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Fatalf("round %d: filling a 48 MiB disk with %d bytes: %v, want ENOSPC", round, acked, werr)
		}
		// While full: small writes to new files fail loudly or succeed
		// and read back.
		okFull, failedFull := 0, 0
		for i := 0; i < 8; i++ {
			n := fmt.Sprintf("full-%d-%d", round, i)
			b := pattern(marker+n, 10000)
			if err := writeFileSync(filepath.Join(data, n), b); err != nil {
				failedFull++
				checkNoWrongPlaintext(t, filepath.Join(data, n), b)
				os.Remove(filepath.Join(data, n))
				continue
			}
			okFull++
			before[n] = b
		}
		// What was acknowledged reads back; the rest is not wrong.
		got, err := os.ReadFile(fill)
		if err != nil {
			rf, _ := os.Open(fill)
			buf := make([]byte, acked)
			k, rerr := rf.ReadAt(buf, 0)
			rf.Close()
			t.Errorf("round %d: the full file does not read (%v); its %d acknowledged bytes: %d read, %v, equal %v", round, err, acked, k, rerr, bytes.Equal(buf[:k], want[:k]))
		} else {
			if len(got) < acked || !bytes.Equal(got[:acked], want[:acked]) {
				t.Errorf("round %d: %d acknowledged bytes, file reads %d, prefix equal %v", round, acked, len(got), bytes.Equal(got[:min(acked, len(got))], want[:min(acked, len(got))]))
			}
			checkNoWrongPlaintext(t, fill, want)
		}
		if m.daemonPid() != pid {
			t.Fatalf("the daemon changed after ENOSPC")
		}
		t.Logf("round %d: ENOSPC after %d MiB acknowledged (%v); while full %d small writes failed, %d succeeded", round, acked>>20, werr, failedFull, okFull)
		if err := os.Remove(fill); err != nil {
			t.Fatalf("free the space: %v", err)
		}
	}

	verify := func(when string) {
		for n, b := range before {
			got, err := os.ReadFile(filepath.Join(data, n))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: %s reads %d bytes, %v; want %d", when, n, len(got), err, len(b))
			}
		}
	}
	if err := writeFileSync(filepath.Join(data, "after"), pattern(marker+"after", 300000)); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	before["after"] = pattern(marker+"after", 300000)
	verify("after space was freed")
	m.ms(0, "umount")
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	verify("after a remount")
	m.ms(0, "umount")
	scanLeaks(t, m, start, secrets...)
}
