package secmem

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/procfs"
)

func vmLck(t *testing.T) uint64 {
	t.Helper()
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return st.VmLck
}

// TestLockedPages: a Buffer's pages count in VmLck while it lives and no
// longer after Free, and Free zeroes them.
func TestLockedPages(t *testing.T) {
	before := vmLck(t)
	b, err := New(32)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Bytes()) != 32 || !bytes.Equal(b.Bytes(), make([]byte, 32)) {
		t.Fatalf("new buffer: len %d, %x", len(b.Bytes()), b.Bytes())
	}
	if !b.Locked() {
		// Root, or a user under RLIMIT_MEMLOCK: one page always fits
		// unless the limit is 0.
		t.Fatalf("not locked: %v", LockError())
	}
	page := uint64(os.Getpagesize())
	if got := vmLck(t); got < before+page {
		t.Fatalf("VmLck %d bytes after New, was %d: the page is not locked", got, before)
	}
	copy(b.Bytes(), "0123456789abcdef0123456789abcdef")
	mem := b.mem
	b.Free()
	if got := vmLck(t); got != before {
		t.Fatalf("VmLck %d bytes after Free, want %d", got, before)
	}
	if b.Bytes() != nil {
		t.Fatal("Bytes after Free is not nil")
	}
	b.Free() // twice: nothing
	// The mapping is gone.
	smaps, err := os.ReadFile(procfs.Path(os.Getpid(), "smaps"))
	if err != nil {
		t.Fatal(err)
	}
	if flags, ok := vmFlags(smaps, unsafeAddr(mem)); ok && strings.Contains(" "+flags+" ", " dd ") {
		t.Fatalf("the buffer's mapping is still there after Free (VmFlags %s)", flags)
	}
}

// TestDontDump: the mapping carries the dd (do not dump) flag in smaps.
func TestDontDump(t *testing.T) {
	b, err := New(64)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	smaps, err := os.ReadFile(procfs.Path(os.Getpid(), "smaps"))
	if err != nil {
		t.Fatal(err)
	}
	flags, ok := vmFlags(smaps, unsafeAddr(b.mem))
	if !ok {
		t.Fatal("the buffer's mapping is not in smaps")
	}
	for _, want := range []string{"dd", "lo", "dc"} { // do not dump, locked, do not copy on fork
		if !bytes.Contains([]byte(" "+flags+" "), []byte(" "+want+" ")) {
			t.Errorf("VmFlags %q lack %q", flags, want)
		}
	}
}

// TestLimitTooSmall: with RLIMIT_MEMLOCK 0 and without CAP_IPC_LOCK, New
// still works, unlocked, and LockError says why. Run as root, the test
// drops CAP_IPC_LOCK from the effective set of its own thread (capability
// checks are per thread) for the duration.
func TestLimitTooSmall(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		t.Fatal(err)
	}
	if caps[0].Effective&(1<<unix.CAP_IPC_LOCK) != 0 {
		dropped := caps
		dropped[0].Effective &^= 1 << unix.CAP_IPC_LOCK
		if err := unix.Capset(&hdr, &dropped[0]); err != nil {
			t.Fatal(err)
		}
		defer unix.Capset(&hdr, &caps[0])
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 0, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old)
	b, err := New(32)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	le := LockError()
	if b.Locked() || le == nil || !strings.Contains(le.Error(), "RLIMIT_MEMLOCK is 0") {
		t.Fatalf("locked %v, LockError %v with RLIMIT_MEMLOCK 0", b.Locked(), le)
	}
	copy(b.Bytes(), "still usable")
}

// vmFlags returns the VmFlags of the smaps entry that starts at addr.
func vmFlags(smaps []byte, addr uintptr) (string, bool) {
	in := false
	for line := range strings.SplitSeq(string(smaps), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, _, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			start, err := strconv.ParseUint(lo, 16, 64)
			in = err == nil && uintptr(start) == addr
			continue
		}
		if in && f[0] == "VmFlags:" {
			return strings.Join(f[1:], " "), true
		}
	}
	return "", false
}

func unsafeAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestSizes(t *testing.T) {
	for _, n := range []int{0, -1, 1<<20 + 1} {
		if _, err := New(n); err == nil {
			t.Errorf("New(%d) succeeded", n)
		}
	}
	b, err := New(5000) // two pages
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if len(b.Bytes()) != 5000 || len(b.mem) != 2*os.Getpagesize() {
		t.Fatalf("len %d, mapping %d", len(b.Bytes()), len(b.mem))
	}
}
