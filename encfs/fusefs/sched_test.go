package fusefs

import (
	"runtime"
	"testing"
	"time"
)

// spareProcs leaves Ps that go-fuse's readers cannot all hold, and never
// lowers a GOMAXPROCS set higher already.
func TestSpareProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(orig)

	runtime.GOMAXPROCS(2)
	spareProcs()
	readers := 2 // go-fuse's pool at GOMAXPROCS 2
	if got := runtime.GOMAXPROCS(0); got < 8 || got < runtime.NumCPU()+2*readers {
		t.Fatalf("GOMAXPROCS after spareProcs = %d, want at least max(8, %d)", got, runtime.NumCPU()+2*readers)
	}

	runtime.GOMAXPROCS(100)
	spareProcs()
	if got := runtime.GOMAXPROCS(0); got != 100 {
		t.Fatalf("spareProcs lowered GOMAXPROCS from 100 to %d", got)
	}
}

// yield passes through the scheduler at most once per yieldEvery over the
// whole process.
func TestYieldRateLimited(t *testing.T) {
	lastYield.Store(0)
	var yields int
	start := time.Now()
	for i := 0; i < 100000; i++ {
		before := lastYield.Load()
		yield()
		if lastYield.Load() != before {
			yields++
		}
	}
	elapsed := time.Since(start)
	// One yield per yieldEvery of the loop's time, plus the first.
	if yields < 1 {
		t.Fatal("yield never yielded")
	}
	if max := 2 + int(elapsed/yieldEvery); yields > max {
		t.Fatalf("%d yields in %v, more than one per %v", yields, elapsed, yieldEvery)
	}
}
