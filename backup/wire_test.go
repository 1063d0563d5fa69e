package backup

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// TestWireCodes: every error a job reports by code turns back into an
// error that matches the same sentinel, and the specific tool errors are
// not reported as a plain tool failure.
func TestWireCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		is   error
	}{
		{&ToolError{Tool: "mariadb-dump", AccessDenied: true}, CodeMySQLCreds, ErrMySQLCredentials},
		{&ToolError{Tool: "mariadb-dump", MissingPrivilege: true}, CodeMySQLPrivs, ErrMySQLPrivileges},
		{&PrivilegeError{Op: "restore"}, CodeMySQLPrivs, ErrMySQLPrivileges},
		{fmt.Errorf("run: %w", &ToolError{Tool: "mariadb-dump"}), CodeToolFailed, ErrToolFailed},
		{fmt.Errorf("x: %w", ErrNotFound), CodeNotFound, ErrNotFound},
		{content.ErrCorrupt, CodeCorrupt, ErrCorrupt},
		{ErrCorrupt, CodeCorrupt, ErrCorrupt},
		{ErrToolMissing, CodeToolMissing, ErrToolMissing},
		{ErrBusy, CodeBusy, ErrBusy},
		{ErrDenied, CodeDenied, ErrDenied},
		{ErrUsage, CodeUsage, ErrUsage},
		{ErrExists, CodeConflict, ErrExists},
		{ErrLocked, CodeLocked, ErrLocked},
		{ErrObjectStore, CodeObjectStore, ErrObjectStore},
		{fmt.Errorf("write: %w", syscall.ENOSPC), CodeDiskFull, syscall.ENOSPC},
		{context.Canceled, CodeInterrupted, context.Canceled},
		// SSH failures of a job over --ssh: sshclient's codes, also when
		// the failure wraps one of this package's errors.
		{fmt.Errorf("dial: %w", sshclient.ErrHostKey), sshclient.CodeHostKey, sshclient.ErrHostKey},
		{sshclient.ErrConfig, sshclient.CodeConfig, sshclient.ErrConfig},
		{sshclient.ErrAuth, sshclient.CodeFailed, sshclient.ErrConnect},
		{&sshclient.ForwardError{Network: "tcp", Remote: "127.0.0.1:3306", Err: errors.New("refused")}, sshclient.CodeFailed, sshclient.ErrConnect},
		{fmt.Errorf("%w: %w", ErrToolFailed, sshclient.ErrConnect), sshclient.CodeFailed, sshclient.ErrConnect},
	} {
		code := WireCode(tc.err)
		if code != tc.code {
			t.Errorf("%v: code %q, want %q", tc.err, code, tc.code)
		}
		if back := WireError(code); !errors.Is(back, tc.is) {
			t.Errorf("%v: code %q comes back as %v, not %v", tc.err, code, back, tc.is)
		}
	}
	if c := WireCode(errors.New("other")); c != "" {
		t.Errorf("an unknown error has code %q", c)
	}
	if e := WireError("no_such_code"); e != nil {
		t.Errorf("an unknown code stands for %v", e)
	}
	var te error = &ToolError{Tool: "t"}
	if errors.Is(te, ErrMySQLCredentials) || errors.Is(te, ErrMySQLPrivileges) {
		t.Error("a plain tool error matches a MySQL credentials sentinel")
	}
}
