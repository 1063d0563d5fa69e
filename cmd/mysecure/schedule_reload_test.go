package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDaemonSchedulesFileAppears: a daemon started on a host without a
// config file finds the one the first `schedule add` creates at the
// default path (issue 15 item 9: it reported "(0 jobs)").
func TestDaemonSchedulesFileAppears(t *testing.T) {
	saved := defaultConfigFile
	defaultConfigFile = filepath.Join(t.TempDir(), "mysecure.yaml")
	t.Cleanup(func() { defaultConfigFile = saved })
	t.Setenv("MYSECURE_CONFIG", "")

	g := &globalOptions{} // as the daemon: no --config, no file at start
	jobs, _, err := daemonSchedules(g)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("no config file: %d jobs, %v; want 0 and no error", len(jobs), err)
	}
	if err := os.WriteFile(defaultConfigFile, []byte("schedules:\n  - name: nightly\n    schedule: \"30 2 * * *\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jobs, _, err = daemonSchedules(g)
	if err != nil || len(jobs) != 1 || jobs[0].Name != "nightly" {
		t.Fatalf("after the file appeared: %+v, %v; want the nightly job", jobs, err)
	}
}
