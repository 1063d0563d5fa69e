package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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
	// ErrToolFailed: a backup or restore tool failed (every *ToolError
	// is one).
	ErrToolFailed = errors.New("tool failed")
	// ErrMySQLCredentials: the server refused the stored credentials (a
	// *ToolError with AccessDenied is one).
	ErrMySQLCredentials = errors.New("the server refused the credentials")
	// ErrMySQLPrivileges: the credentials lack a privilege (a
	// *PrivilegeError, and a *ToolError with MissingPrivilege, are one).
	ErrMySQLPrivileges = errors.New("the credentials lack a privilege")
)

// ToolError is a tool that failed: its exit status and the last lines it
// wrote to stderr.
type ToolError struct {
	Tool   string
	Status string // "exit status 2", "signal: killed"
	Stderr []string
	// AccessDenied is set when the server refused the credentials.
	AccessDenied bool
	// Denied are the opens of the encrypted mount that the access rules
	// refused the tool (and its children) while it ran: most often why
	// it failed.
	Denied []Denied
	// MissingPrivilege is set when the server let the credentials in
	// but refused a statement for want of a privilege.
	MissingPrivilege bool
}

func (e *ToolError) Error() string {
	msg := fmt.Sprintf("%s failed (%s)", e.Tool, e.Status)
	for _, d := range e.Denied {
		msg += ": denied: " + d.String()
	}
	if len(e.Stderr) > 0 {
		msg += ": " + strings.Join(e.Stderr, " | ")
	}
	return msg
}

// Is makes a tool error match ErrToolFailed, and ErrMySQLCredentials or
// ErrMySQLPrivileges when the server said why.
func (e *ToolError) Is(target error) bool {
	switch target {
	case ErrToolFailed:
		return true
	case ErrMySQLCredentials:
		return e.AccessDenied
	case ErrMySQLPrivileges:
		return e.MissingPrivilege
	}
	return false
}

// Hint is what to do about the failure: the rule to add when the access
// rules denied the tool, else "".
func (e *ToolError) Hint() string {
	var hs []string
	for _, d := range e.Denied {
		if d.Hint != "" && !slices.Contains(hs, d.Hint) {
			hs = append(hs, d.Hint)
		}
	}
	return strings.Join(hs, "; ")
}

// Denied is what the mount's access rules refused one program.
type Denied struct {
	Program string   `json:"program"` // the executable, resolved ("" if unidentified)
	Files   []string `json:"files"`   // the latest files it was refused (a few)
	Count   int      `json:"count"`
	Rule    string   `json:"rule,omitempty"` // the narrowest rule that allows it, if a rule helps
	Hint    string   `json:"hint,omitempty"`
}

func (d Denied) String() string {
	prog := d.Program
	if prog == "" {
		prog = "an unidentified process"
	}
	s := prog + " opening " + strings.Join(d.Files, ", ")
	if more := d.Count - len(d.Files); more > 0 {
		s += fmt.Sprintf(" (%d more)", more)
	}
	return s
}

// DenialSource returns what the access rules denied the processes of
// group pgid since a time (nil when no daemon can tell).
type DenialSource func(ctx context.Context, since time.Time, pgid int) []Denied

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
