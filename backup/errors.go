package backup

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a caller branches on (the CLI maps them to exit codes).
var (
	// ErrNotFound: no backup, or no credentials, with that name.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: a backup's data or manifest is damaged or was modified.
	ErrCorrupt = errors.New("backup is corrupt")
	// ErrToolMissing: the backup or client program is not installed.
	ErrToolMissing = errors.New("program not found")
	// ErrBusy: another run holds the lock.
	ErrBusy = errors.New("busy")
	// ErrDenied: the caller may not run this operation.
	ErrDenied = errors.New("not allowed")
	// ErrUsage: bad options.
	ErrUsage = errors.New("invalid options")
	// ErrExists: the target already exists or is not empty.
	ErrExists = errors.New("already exists")
)

// ToolError is a tool that failed: its exit status and the last lines it
// wrote to stderr.
type ToolError struct {
	Tool   string
	Status string // "exit status 2", "signal: killed"
	Stderr []string
	// AccessDenied is set when the server refused the credentials.
	AccessDenied bool
	// MissingPrivilege is set when the server let the credentials in
	// but refused a statement for want of a privilege.
	MissingPrivilege bool
}

func (e *ToolError) Error() string {
	msg := fmt.Sprintf("%s failed (%s)", e.Tool, e.Status)
	if len(e.Stderr) > 0 {
		msg += ": " + strings.Join(e.Stderr, " | ")
	}
	return msg
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
