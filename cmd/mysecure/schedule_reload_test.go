package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/config"
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

// TestDaemonReloadReadsSSH: a reload returns the ssh: section with the
// schedules (the daemon dials the hosts of its last reload), and refuses
// a file whose schedule names a host the section does not have.
func TestDaemonReloadReadsSSH(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mysecure.yaml")
	good := "ssh:\n  hosts:\n    - name: db1\n      host: 10.0.0.7\n      port: 2222\n      keepalive: 2s\n      keepalive-count: 4\n" +
		"schedules:\n  - name: nightly\n    schedule: \"30 2 * * *\"\n    ssh: db1\n"
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := readSchedules(file)
	if err != nil || len(c.Schedules) != 1 || len(c.SSH.Hosts) != 1 {
		t.Fatalf("readSchedules: %+v %v", c, err)
	}
	hosts := c.SSH
	tg, err := hosts.Resolve("db1")
	if err != nil || tg.Addr() != "10.0.0.7:2222" || tg.Keepalive.String() != "2s" || tg.KeepaliveCount != 4 {
		t.Fatalf("db1 after a reload: %+v %v", tg, err)
	}
	for _, tc := range []struct{ name, bad, want, hint string }{
		{"unknown host", strings.Replace(good, "ssh: db1", "ssh: db9", 1), `"db9" is not in the ssh: section`, config.HintSSH},
		{"bad port", strings.Replace(good, "port: 2222", "port: 70000", 1), "port 70000 is out of range", config.HintSSH},
		{"bad schedule", strings.Replace(good, "30 2 * * *", "30 2 * *", 1), "job nightly", config.HintSchedule},
		{"unknown key", strings.Replace(good, "keepalive: 2s", "keepalive: 2s\n      compression: yes", 1), "compression", "see 'mysecure help backup'"},
	} {
		os.WriteFile(file, []byte(tc.bad), 0o600)
		_, err := readSchedules(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		// The reload's errors are usage errors with the hints of the start's.
		if code, h := classify(err); code != exitUsage || h != tc.hint {
			t.Errorf("%s: exit %d, hint %q; want %d, %q", tc.name, code, h, exitUsage, tc.hint)
		}
	}
}

// TestDaemonReloadTargets: a reload gives a job without targets: the
// backup-to of the file, as the start does (after a reload such jobs went
// to local only), and refuses a file whose backup-targets differ from the
// ones the daemon made its object-store clients for.
func TestDaemonReloadTargets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mysecure.yaml")
	t.Setenv("MYSECURE_CONFIG", "")
	targets := "backup-targets:\n  offsite:\n    url: s3://bucket/prefix\n    endpoint: http://127.0.0.1:7070\n    region: us-east-1\n"
	body := targets + "backup-to: [local, offsite]\nschedules:\n  - name: nightly\n    schedule: \"30 2 * * *\"\n  - name: here\n    schedule: \"@daily\"\n    targets: [local]\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := readSchedules(file)
	if err != nil {
		t.Fatal(err)
	}
	g := &globalOptions{cfg: Config{File: file, BackupTargets: c.BackupTargets}}
	jobs, _, err := daemonSchedules(g)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("reload: %+v %v", jobs, err)
	}
	if got := strings.Join(jobs[0].Targets, ","); got != "local,offsite" {
		t.Fatalf("job without targets: got %q after a reload, want backup-to's local,offsite", got)
	}
	if got := strings.Join(jobs[1].Targets, ","); got != "local" {
		t.Fatalf("job with targets: %q", got)
	}
	os.WriteFile(file, []byte(strings.Replace(body, "bucket/prefix", "other/prefix", 1)), 0o600)
	if _, _, err := daemonSchedules(g); err == nil || !strings.Contains(err.Error(), "backup-targets changed since the daemon started") {
		t.Fatalf("changed targets: %v", err)
	}
	os.WriteFile(file, []byte(strings.Replace(body, "[local, offsite]", "[local, nowhere]", 1)), 0o600)
	if _, _, err := daemonSchedules(g); err == nil || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Fatalf("unknown target in backup-to: %v", err)
	}
}
