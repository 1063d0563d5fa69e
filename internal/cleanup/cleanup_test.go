package cleanup

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set
	var ran []string
	s.Add(func() { ran = append(ran, "a") })
	remove := s.Add(func() { ran = append(ran, "b") })
	remove()
	s.Run()
	if len(ran) != 1 || ran[0] != "a" {
		t.Fatalf("ran %v, want [a]", ran)
	}
	s.Run() // emptied: nothing runs twice
	if len(ran) != 1 {
		t.Fatalf("second Run ran %v", ran)
	}
	remove() // after Run: harmless
}

// Outputs are registered and removed while a signal handler runs the set.
// A function removed after Run took the set may still run (at most once):
// only the never-removed ones have an exact count.
func TestSetConcurrent(t *testing.T) {
	var s Set
	var kept, gone atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				var once atomic.Bool
				s.Add(func() {
					if once.Swap(true) {
						t.Error("a function ran twice")
					}
					gone.Add(1)
				})()
				s.Add(func() { kept.Add(1) })
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.Run() }()
	wg.Wait()
	s.Run()
	if got := kept.Load(); got != 800 {
		t.Fatalf("%d of the never-removed functions ran, want all 800, once each", got)
	}
	if got := gone.Load(); got > 800 {
		t.Fatalf("%d removed functions ran, more than were added", got)
	}
}
