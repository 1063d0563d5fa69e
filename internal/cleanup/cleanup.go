// Package cleanup keeps what a process must undo if it is interrupted:
// partial outputs that a signal handler removes before the process exits.
//
// It only holds and runs functions; it must not install signal handlers,
// print or exit (cmd does that).
package cleanup

import "sync"

// Set holds cleanup functions; its zero value is ready to use, and it is
// safe for concurrent use.
type Set struct {
	mu  sync.Mutex
	fns map[int]func()
	n   int
}

// Add registers fn and returns a function that unregisters it (call it
// when the output is complete or already removed).
func (c *Set) Add(fn func()) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fns == nil {
		c.fns = map[int]func(){}
	}
	c.n++
	id := c.n
	c.fns[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.fns, id)
	}
}

// Run runs the registered functions once each, in no particular order, and
// empties the set. A function whose remove is called while Run runs may
// still run: a cleanup must be harmless on an output that has just been
// completed (remove a temporary name, not the final one).
func (c *Set) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
