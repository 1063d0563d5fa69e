package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// AuditRecord is one line of the access log.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"` // "allow", "deny", "would-deny" (permissive/admin)
	Mode     string    `json:"mode"`
	Pid      int       `json:"pid"`
	Uid      uint32    `json:"uid"`
	Exe      string    `json:"exe,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	File     string    `json:"file"`
	Category string    `json:"category"`
	Rule     string    `json:"rule,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// auditLog writes JSON lines and rotates by size: path, path.1 ... path.N.
// A log deleted or renamed away by another tool (logrotate without
// copytruncate) is noticed at the next write, which goes to a new file at
// path.
type auditLog struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
}

func openAuditLog(path string, maxBytes int64, keep int) (*auditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("failed to create audit log dir: %w", err)
	}
	a := &auditLog{path: path, maxBytes: maxBytes, keep: keep}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *auditLog) open() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	a.f, a.size = f, fi.Size()
	return nil
}

func (a *auditLog) rotate() error {
	a.f.Close()
	for i := a.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", a.path, i), fmt.Sprintf("%s.%d", a.path, i+1))
	}
	if err := os.Rename(a.path, a.path+".1"); err != nil && !os.IsNotExist(err) {
		return err
	}
	return a.open()
}

// Write appends one record. Errors are returned for the daemon's own log;
// an access decision never waits on a failing audit log.
func (a *auditLog) Write(r AuditRecord) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return fmt.Errorf("audit log closed")
	}
	if err := a.reopenIfMoved(); err != nil {
		return err
	}
	if a.maxBytes > 0 && a.size+int64(len(line)) > a.maxBytes {
		if err := a.rotate(); err != nil {
			return err
		}
	}
	n, err := a.f.Write(line)
	a.size += int64(n)
	return err
}

// reopenIfMoved opens a new file at path when the open one is no longer
// there: deleted (no links left) or replaced (path names another file).
func (a *auditLog) reopenIfMoved() error {
	cur, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat audit log: %w", err)
	}
	atPath, err := os.Stat(a.path)
	if err == nil && os.SameFile(cur, atPath) {
		if st, ok := cur.Sys().(*syscall.Stat_t); !ok || st.Nlink > 0 {
			return nil
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to stat audit log: %w", err)
	}
	a.f.Close()
	a.f = nil
	return a.open()
}

func (a *auditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
