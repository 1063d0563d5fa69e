// Package secmem holds small secrets (key material) in memory outside the
// Go heap: anonymous pages of their own, locked into RAM (mlock: never
// written to swap), marked MADV_DONTDUMP (left out of core dumps) and
// MADV_DONTFORK (not copied into a forked child), and zeroed before they
// are unmapped.
//
// It protects only the bytes it holds. Copies the Go runtime or a library
// makes (a cipher's expanded key, a hash state) are ordinary heap memory.
// It must not print; a process that cannot lock memory (RLIMIT_MEMLOCK too
// small for a non-root user) still gets its pages, unlocked, and LockError
// says why once.
package secmem

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Buffer is a secret of fixed size on pages of its own. Free it when done;
// an unreachable Buffer is zeroed and unmapped by the garbage collector.
type Buffer struct {
	b       []byte // len = the size asked for
	mem     []byte // the whole mapping
	locked  bool
	cleanup runtime.Cleanup
}

var (
	lockErrMu sync.Mutex
	lockErr   error
)

// LockError is the first failure to lock pages into memory in this
// process, or nil. Callers that log report it once.
func LockError() error {
	lockErrMu.Lock()
	defer lockErrMu.Unlock()
	return lockErr
}

// New returns a zeroed Buffer of n bytes (1 <= n <= 1 MiB). Locking is
// best effort (see LockError); mapping failures are errors.
func New(n int) (*Buffer, error) {
	if n < 1 || n > 1<<20 {
		return nil, fmt.Errorf("secmem: size %d out of range 1..%d", n, 1<<20)
	}
	page := os.Getpagesize()
	size := (n + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("secmem: mmap: %w", err)
	}
	// Out of core dumps, and not copied into a child on fork.
	if err := unix.Madvise(mem, unix.MADV_DONTDUMP); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("secmem: madvise(MADV_DONTDUMP): %w", err)
	}
	if err := unix.Madvise(mem, unix.MADV_DONTFORK); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("secmem: madvise(MADV_DONTFORK): %w", err)
	}
	b := &Buffer{b: mem[:n:n], mem: mem}
	if err := unix.Mlock(mem); err != nil {
		lockErrMu.Lock()
		if lockErr == nil {
			lockErr = fmt.Errorf("secret pages not locked in memory (they may reach swap): mlock: %w%s", err, limitHint(err))
		}
		lockErrMu.Unlock()
	} else {
		b.locked = true
	}
	b.cleanup = runtime.AddCleanup(b, release, mapping{mem, b.locked})
	return b, nil
}

func limitHint(err error) string {
	if !errors.Is(err, unix.ENOMEM) && !errors.Is(err, unix.EPERM) {
		return ""
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) != nil {
		return ""
	}
	return fmt.Sprintf(" (RLIMIT_MEMLOCK is %d bytes; raise it, e.g. LimitMEMLOCK= in the systemd unit)", rl.Cur)
}

// mapping is what the cleanup needs: never the Buffer itself.
type mapping struct {
	mem    []byte
	locked bool
}

func release(m mapping) {
	clear(m.mem)
	if m.locked {
		unix.Munlock(m.mem)
	}
	unix.Munmap(m.mem)
}

// Bytes is the secret. It is valid until Free.
func (b *Buffer) Bytes() []byte { return b.b }

// Locked reports whether the pages are locked into RAM.
func (b *Buffer) Locked() bool { return b.locked }

// Free zeroes and unmaps the pages. Free of a nil or freed Buffer does
// nothing.
func (b *Buffer) Free() {
	if b == nil || b.mem == nil {
		return
	}
	b.cleanup.Stop()
	release(mapping{b.mem, b.locked})
	b.b, b.mem = nil, nil
}
