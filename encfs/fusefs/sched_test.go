package fusefs

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/procs"
)

// spareProcsFor leaves Ps that go-fuse's readers cannot all hold, from the
// GOMAXPROCS the process started with (not from a raised one).
func TestSpareProcsFor(t *testing.T) {
	for _, c := range []struct{ base, want int }{
		{1, 8}, {2, 8}, {4, 12}, {16, 48}, {64, 96},
	} {
		if got := spareProcsFor(c.base); got != c.want {
			t.Errorf("spareProcsFor(%d) = %d, want %d", c.base, got, c.want)
		}
	}
	// Applying it twice does not raise twice.
	orig := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(orig)
	spareProcs()
	first := runtime.GOMAXPROCS(0)
	spareProcs()
	if got := runtime.GOMAXPROCS(0); got != first {
		t.Fatalf("second spareProcs changed GOMAXPROCS %d -> %d", first, got)
	}
	if os.Getenv("GOMAXPROCS") == "" && first < spareProcsFor(procs.Initial()) {
		t.Fatalf("GOMAXPROCS %d after spareProcs, want at least %d", first, spareProcsFor(procs.Initial()))
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
