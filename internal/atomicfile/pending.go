package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ErrAborted: Commit after Abort (a signal handler aborted the output).
var ErrAborted = errors.New("output aborted")

// Pending is a file being written next to its final path: it appears
// there, whole, on Commit, and never half-written. Abort (deferred, and
// from a signal handler: both may race with Commit) removes it unless
// Commit ran.
type Pending struct {
	f    *os.File
	path string

	mu      sync.Mutex
	done    bool
	aborted bool
}

// Create starts a pending file for path (a temp file in its directory).
func Create(path string) (*Pending, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".mysecure-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("failed to create output: %w", err)
	}
	return &Pending{f: f, path: path}, nil
}

func (p *Pending) Write(b []byte) (int, error) { return p.f.Write(b) }

// Commit syncs the file and renames it to its path.
func (p *Pending) Commit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aborted {
		return ErrAborted
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	if err := os.Rename(p.f.Name(), p.path); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	p.done = true
	return nil
}

// Abort removes the temp file, unless Commit ran.
func (p *Pending) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.aborted {
		return
	}
	p.aborted = true
	p.f.Close()
	os.Remove(p.f.Name())
}
