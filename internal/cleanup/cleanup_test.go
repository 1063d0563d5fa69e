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
func TestSetConcurrent(t *testing.T) {
	var s Set
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				s.Add(func() { runs.Add(1) })()
				s.Add(func() { runs.Add(1) })
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.Run() }()
	wg.Wait()
	s.Run()
	if got := runs.Load(); got != 800 {
		t.Fatalf("%d functions ran, want the 800 never removed, once each", got)
	}
}
