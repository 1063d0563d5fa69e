package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

// binaryPath is the test binary's absolute path, as cron lines name it.
func binaryPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(binary)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runShell runs a command line with /bin/sh and extra environment.
func runShell(env []string, line string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
