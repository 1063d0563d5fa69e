package daemon

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestJobGateWaits: closeAndWait returns only after every admitted job
// left, and no job is admitted after it started (the daemon wipes its keys
// right after).
func TestJobGateWaits(t *testing.T) {
	var g jobGate
	var finished atomic.Int32
	for i := 0; i < 8; i++ {
		if !g.enter() {
			t.Fatal("refused before close")
		}
		go func(d time.Duration) {
			time.Sleep(d)
			finished.Add(1)
			g.leave()
		}(time.Duration(i*10) * time.Millisecond)
	}
	g.closeAndWait()
	if n := finished.Load(); n != 8 {
		t.Fatalf("closeAndWait returned with %d of 8 jobs finished", n)
	}
	if g.enter() {
		t.Fatal("a job was admitted after close")
	}
	var empty jobGate
	done := make(chan struct{})
	go func() { empty.closeAndWait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closeAndWait with no job did not return")
	}
}
