package posixsuite

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestSuite runs every posixtest test on $POSIXSUITE_DIR, each in a fresh
// subdirectory named after it (the tests create fixed names).
// $POSIXSUITE_RUN narrows it as -test.run would, by exact names, comma
// separated.
func TestSuite(t *testing.T) {
	dir := os.Getenv("POSIXSUITE_DIR")
	if dir == "" {
		// Not a missing component: the runner is started by
		// bench/posixsuite.sh or integration's TestConformance.
		t.Skip("POSIXSUITE_DIR is not set (run make posix-suite)")
	}
	names := make([]string, 0, len(posixtest.All))
	for n := range posixtest.All {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			d := filepath.Join(dir, n)
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatalf("failed to make the test directory: %v", err)
			}
			posixtest.All[n](t, d)
		})
	}
}
