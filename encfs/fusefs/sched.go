package fusefs

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mysecure/mysecure/internal/procs"
)

// The Go runtime and go-fuse's request readers.
//
// go-fuse reads requests with blocking read(2) calls on /dev/fuse, one
// goroutine per reader, and a reader handles the request it read itself
// before it reads again. To the runtime such a goroutine never stops
// running: between requests it sits in a system call holding its P, and it
// never passes through the scheduler. sysmon, the runtime's watchdog, then
// does two things that cost more than the requests themselves on a small,
// busy machine, where a wakeup is expensive:
//
//   - a P that has not been through the scheduler for 10 ms looks like a
//     goroutine that needs preempting; sysmon takes the P away while the
//     reader waits in read(2), and
//   - when every P is held by a reader in read(2), sysmon retakes one as
//     soon as it has seen it twice (20-40 µs),
//
// and each retake resets sysmon to waking every 20 µs. The two remedies:
//
//   - spareProcs: more Ps than readers can hold, so that an idle P always
//     exists and a reader waiting in the kernel is not taken for starvation;
//   - yield: the hot handlers (read, write, fsync) pass through the
//     scheduler at most once a millisecond (runtime.Gosched), so that under
//     load the Ps the readers run on rarely look stuck for 10 ms (the limit
//     is shared by the whole process, not kept per P: with a few readers
//     taking turns each passes through often enough). Once a millisecond
//     rather than on every request: a Gosched may wake an idle thread to
//     look for work, which is itself a context switch.
//
// The measurements behind this (perf profiles, A/B runs under sysbench)
// are in docs/performance-mount.md, "What changed in session 3".

// spareProcs raises GOMAXPROCS, once per process, so that go-fuse's
// readers, which may all be blocked in read(2) on /dev/fuse at once, cannot
// hold every P. go-fuse sizes its reader pool from GOMAXPROCS when the
// server is created (at least 2, at most 16), so call this after the mount:
// the pool keeps its size and the runtime gets the spare Ps. A GOMAXPROCS
// set by the operator ($GOMAXPROCS) is left alone.
func spareProcs() {
	spareOnce.Do(func() {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		if want := spareProcsFor(procs.Initial()); want > runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(want)
		}
	})
}

var spareOnce sync.Once

// spareProcsFor is the GOMAXPROCS for a process that started with base
// (the CPUs or a container's CPU limit). Readers (and the one go-fuse adds
// when all are busy) wait in read(2) or sit in a handler's fdatasync; twice
// the pool on top of base usually leaves idle Ps (go-fuse adds readers
// while all are busy, so this is not a hard bound). At least 8: fewer
// still let sysmon retake on 2 CPUs (docs/performance-mount.md).
func spareProcsFor(base int) int {
	readers := min(max(base, 2), 16)
	return max(8, base+2*readers)
}

// yieldEvery is how often the hot handlers pass through the scheduler at
// most; well under sysmon's 10 ms preemption horizon.
const yieldEvery = time.Millisecond

var (
	schedEpoch = time.Now()
	lastYield  atomic.Int64 // ns since schedEpoch (monotonic)
)

// yield lets the runtime see the calling reader go through the scheduler,
// at most once per yieldEvery over the whole daemon.
func yield() {
	now := int64(time.Since(schedEpoch))
	last := lastYield.Load()
	if now-last < int64(yieldEvery) || !lastYield.CompareAndSwap(last, now) {
		return
	}
	runtime.Gosched()
}
