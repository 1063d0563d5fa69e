package daemon

import "sync"

// jobGate counts running jobs so that shutdown can wait for them: a job
// streams for as long as its tool runs, longer than the control server's
// grace period, and the keys and the audit log must outlive it (a backup
// cut off by a wipe would leave its partial files behind). After close, no
// job starts.
type jobGate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	running int
	closed  bool
}

// enter admits a job; false once the gate is closed.
func (g *jobGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running++
	return true
}

// leave ends a job admitted by enter.
func (g *jobGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.running == 0 && g.cond != nil {
		g.cond.Broadcast()
	}
}

// closeAndWait refuses new jobs and waits until the running ones left.
func (g *jobGate) closeAndWait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	for g.running > 0 {
		g.cond.Wait()
	}
}
