package backup

import (
	"context"
	"errors"
	"syscall"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// A backup job that runs in the daemon reports its error to the client
// as a code (the daemon's control API carries codes, not Go errors).
// WireCode and WireError are the two directions of one table, so that
// the client's error matches the same sentinels (errors.Is) as the error
// of a run in the caller's own process.

// Codes of job errors on the wire. Codes the daemon has too ("denied",
// "usage", "conflict", "interrupted") stand for this package's errors in
// a job's answer.
const (
	CodeNotFound    = "not_found"
	CodeCorrupt     = "corrupt"
	CodeToolFailed  = "tool_failed"
	CodeMySQLCreds  = "mysql_credentials"
	CodeMySQLPrivs  = "mysql_privileges"
	CodeToolMissing = "tool_missing"
	CodeBusy        = "busy"
	CodeDiskFull    = "disk_full"
	CodeInterrupted = "interrupted"
	CodeLocked      = "locked"
	CodeObjectStore = "object_store"
	CodeDenied      = "denied"
	CodeUsage       = "usage"
	CodeConflict    = "conflict"
)

// wireCodes is tried in order: when encoding, the first entry whose err
// matches gives the code (the specific tool errors before
// ErrToolFailed); when decoding, the first entry with the code gives the
// error.
var wireCodes = []struct {
	code string
	err  error
}{
	{CodeMySQLCreds, ErrMySQLCredentials},
	{CodeMySQLPrivs, ErrMySQLPrivileges},
	{CodeToolFailed, ErrToolFailed},
	{CodeLocked, ErrLocked},
	{CodeObjectStore, ErrObjectStore},
	{CodeNotFound, ErrNotFound},
	{CodeCorrupt, ErrCorrupt},
	{CodeCorrupt, content.ErrCorrupt},
	{CodeToolMissing, ErrToolMissing},
	{CodeBusy, ErrBusy},
	{CodeDenied, ErrDenied},
	{CodeUsage, ErrUsage},
	{CodeConflict, ErrExists},
	{CodeDiskFull, syscall.ENOSPC},
	{CodeInterrupted, context.Canceled},
}

// WireCode is the code of a job's error, or "" when this package has
// none for it (the daemon then classifies it). SSH failures (a backup or
// restore over --ssh) get sshclient's codes, before this package's.
func WireCode(err error) string {
	if c := sshclient.WireCode(err); c != "" {
		return c
	}
	for _, w := range wireCodes {
		if errors.Is(err, w.err) {
			return w.code
		}
	}
	return ""
}

// WireError is the error a code stands for (sshclient's sentinels for
// its codes), or nil for a code this package does not know.
func WireError(code string) error {
	if err := sshclient.WireError(code); err != nil {
		return err
	}
	for _, w := range wireCodes {
		if w.code == code {
			return w.err
		}
	}
	return nil
}
