package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditLogReopens: a log deleted or renamed away under the daemon
// (logrotate without copytruncate) is not written into any more; the
// next record goes to a new file at the configured path.
func TestAuditLogReopens(t *testing.T) {
	for _, tc := range []struct {
		name   string
		moveTo string // "" deletes
	}{
		{"deleted", ""},
		{"renamed", "access.log.1"},
		{"replaced", "access.log.old"}, // renamed, and a new file put at the path
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "access.log")
			a, err := openAuditLog(path, 1<<20, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.Write(AuditRecord{Decision: "deny", File: "/before"}); err != nil {
				t.Fatal(err)
			}
			if tc.moveTo == "" {
				os.Remove(path)
			} else {
				os.Rename(path, filepath.Join(dir, tc.moveTo))
			}
			if tc.name == "replaced" {
				os.WriteFile(path, []byte("created by logrotate\n"), 0o600)
			}
			if err := a.Write(AuditRecord{Decision: "deny", File: "/after"}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no log at the path after the write: %v", err)
			}
			if !strings.Contains(string(b), `"/after"`) || strings.Contains(string(b), `"/before"`) {
				t.Fatalf("log at the path:\n%s", b)
			}
			if tc.moveTo != "" {
				old, _ := os.ReadFile(filepath.Join(dir, tc.moveTo))
				if strings.Contains(string(old), `"/after"`) {
					t.Fatalf("the record went into the moved file:\n%s", old)
				}
			}
		})
	}
}
