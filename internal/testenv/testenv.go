// Package testenv lets tests ask for the real components they need (root,
// FUSE, MariaDB, sshd, commands on PATH). A missing component skips the
// test with a message naming it, unless MYSECURE_TEST_STRICT=1 (as CI sets
// it), where the skip becomes a failure: CI must not pass by skipping.
//
// It is for tests only and must not be imported by non-test code.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing components fail tests instead of
// skipping them.
func Strict() bool { return os.Getenv("MYSECURE_TEST_STRICT") == "1" }

// Missing skips t, or fails it in strict mode, because component is not
// available; why says what was looked for.
func Missing(t testing.TB, component, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("missing test component %s (%s) and MYSECURE_TEST_STRICT=1; run 'make test', which installs it", component, why)
	}
	t.Skipf("skipping: missing test component %s (%s); 'make test' installs it", component, why)
}

// RequireCommands needs every named program on PATH.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, n, "not found on PATH")
		}
	}
}

// RequireRoot needs the test to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", "the test needs uid 0")
	}
}

// RequireFUSE needs /dev/fuse and fusermount3.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Missing(t, "/dev/fuse", err.Error())
	}
	RequireCommands(t, "fusermount3")
}
