package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// valid is a configuration that passes Validate: the defaults, one
// object store, one ssh host and a job that uses both.
func valid() Config {
	return Config{
		Store: DefaultStore, Mount: DefaultMount, Socket: DefaultSocket, StateDir: DefaultStateDir,
		AuditLog: DefaultAuditLog, LogFile: DefaultLogFile, BackupCategory: "mysqlbackup", JobSocket: DefaultJobSock,
		BackupLevel:   1,
		BackupTargets: map[string]TargetConfig{"offsite": {URL: "s3://bucket/prefix", Region: "us-east-1"}},
		BackupTo:      []string{"local", "offsite"},
		Schedules: []schedule.Job{
			{Name: "nightly", Schedule: "30 2 * * *", SSH: "db1"},
			{Name: "here", Schedule: "@daily", Targets: []string{"local"}},
		},
		SSH:  sshclient.Settings{Hosts: []sshclient.HostConfig{{Name: "db1", Host: "10.0.0.7"}}},
		File: "/etc/mysecure/test.yaml",
	}
}

// TestValidate: each bad input is refused with its message and hint.
func TestValidate(t *testing.T) {
	const inFile = "config file /etc/mysecure/test.yaml: "
	for _, tc := range []struct {
		name      string
		change    func(c *Config)
		msg, hint string // hint "" = none
	}{
		{"bad schedule", func(c *Config) { c.Schedules[0].Schedule = "every night" }, inFile + "invalid schedule: job nightly", HintSchedule},
		{"two jobs of one name", func(c *Config) { c.Schedules[1].Name = "nightly" }, inFile + "invalid schedule: two jobs are named nightly", HintSchedule},
		{"target named local", func(c *Config) { c.BackupTargets["local"] = TargetConfig{URL: "s3://b/p"} },
			inFile + `backup-targets: "local" is not a name for an object store`, HintTargets},
		{"target without url", func(c *Config) { c.BackupTargets["offsite"] = TargetConfig{} }, inFile + "backup-targets.offsite: ", HintTargets},
		{"target lock days without mode", func(c *Config) { c.BackupTargets["offsite"] = TargetConfig{URL: "s3://b/p", ObjectLockDays: 3} },
			inFile + "backup-targets.offsite: object-lock-days needs object-lock-mode", HintTargets},
		{"backup-to unknown", func(c *Config) { c.BackupTo = []string{"local", "nowhere"} },
			inFile + `backup-to names "nowhere", which is not local nor under backup-targets`, HintTargets},
		{"job target unknown", func(c *Config) { c.Schedules[1].Targets = []string{"tape"} },
			inFile + `schedule here: target "tape" is not local nor under backup-targets`, HintTargets},
		{"job ssh host unknown", func(c *Config) { c.Schedules[0].SSH = "db9" },
			inFile + `invalid ssh configuration: schedule nightly: ssh host "db9" is not in the ssh: section (or write user@host)`, HintSSH},
		{"ssh port out of range", func(c *Config) { c.SSH.Hosts[0].Port = 70000 }, inFile + "invalid ssh configuration: ssh host db1: port 70000 is out of range", HintSSH},
		{"level 0", func(c *Config) { c.BackupLevel = 0 }, "backup-level 0 is out of range", HintLevel},
		{"level 23", func(c *Config) { c.BackupLevel = 23 }, "backup-level 23 is out of range", HintLevel},
		{"empty store", func(c *Config) { c.Store = "" }, "store must not be empty", ""},
		{"empty job-socket", func(c *Config) { c.JobSocket = "" }, "job-socket must not be empty", ""},
		{"empty backup-category", func(c *Config) { c.BackupCategory = "" }, "backup-category must not be empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := Validate(&c)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to start with %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error on more than one line: %q", err)
			}
			h, ok := hint.Of(err)
			if h != tc.hint || ok != (tc.hint != "") {
				t.Errorf("hint %q (%v), want %q", h, ok, tc.hint)
			}
		})
	}
}

// TestValidateCompletes: a job without targets gets backup-to, a job
// with targets keeps them, relative paths become absolute and an unset
// optional path stays unset.
func TestValidateCompletes(t *testing.T) {
	c := valid()
	c.Store, c.MetricsTextfile, c.LogFile = "rel/store", "", ""
	if err := Validate(&c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Schedules[0].Targets, ","); got != "local,offsite" {
		t.Errorf("job without targets: %q, want backup-to's local,offsite", got)
	}
	if got := strings.Join(c.Schedules[1].Targets, ","); got != "local" {
		t.Errorf("job with targets: %q, want local", got)
	}
	wd, _ := os.Getwd()
	if c.Store != filepath.Join(wd, "rel/store") {
		t.Errorf("store %q, want it absolute under %s", c.Store, wd)
	}
	if c.MetricsTextfile != "" || c.LogFile != "" {
		t.Errorf("unset paths became %q and %q", c.MetricsTextfile, c.LogFile)
	}
}

// TestValidateJobsOnly: the reload's checks pass on a file with only
// the sections it reads (no store, no level).
func TestValidateJobsOnly(t *testing.T) {
	full := valid()
	c := Config{Schedules: full.Schedules, SSH: full.SSH, BackupTargets: full.BackupTargets, BackupTo: full.BackupTo, File: full.File}
	if err := ValidateJobs(&c); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&c); err == nil || err.Error() != "backup-level 0 is out of range" {
		t.Fatalf("Validate of the sections alone: %v, want the level refused", err)
	}
}

func TestTargets(t *testing.T) {
	to := []string{"local", "offsite"}
	for _, tc := range []struct {
		name        string
		backupTo    []string
		given, want []string
	}{
		{"none given: backup-to", to, nil, []string{"local", "offsite"}},
		{"empty given: backup-to", to, []string{}, []string{"local", "offsite"}},
		{"given wins", to, []string{"offsite"}, []string{"offsite"}},
		{"neither: local only (none)", nil, nil, nil},
	} {
		c := Config{BackupTo: tc.backupTo}
		if got := c.Targets(tc.given); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTargetsChanged(t *testing.T) {
	a := map[string]TargetConfig{"offsite": {URL: "s3://bucket/prefix"}}
	for _, tc := range []struct {
		name     string
		old, cur map[string]TargetConfig
		want     bool
	}{
		{"none and empty", nil, map[string]TargetConfig{}, false},
		{"same", a, map[string]TargetConfig{"offsite": {URL: "s3://bucket/prefix"}}, false},
		{"added", nil, a, true},
		{"removed", a, nil, true},
		{"url changed", a, map[string]TargetConfig{"offsite": {URL: "s3://other/prefix"}}, true},
	} {
		if got := TargetsChanged(tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A reload may change which targets jobs use, not the targets.
func TestCheckReload(t *testing.T) {
	running := &Config{BackupTargets: map[string]TargetConfig{"offsite": {URL: "s3://bucket/prefix"}}}
	same := &Config{File: "/etc/mysecure/mysecure.yaml", BackupTargets: map[string]TargetConfig{"offsite": {URL: "s3://bucket/prefix"}}, BackupTo: []string{"offsite"}}
	if err := CheckReload(running, same); err != nil {
		t.Fatalf("same targets: %v", err)
	}
	err := CheckReload(running, &Config{File: "/etc/mysecure/mysecure.yaml"})
	if !errors.Is(err, backup.ErrUsage) || err.Error() != "invalid options: /etc/mysecure/mysecure.yaml: backup-targets changed since the daemon started; nothing was reloaded" {
		t.Fatalf("targets removed: %v", err)
	}
	if h, _ := hint.Of(err); !strings.Contains(h, "restart the daemon") {
		t.Fatalf("hint %q", h)
	}
}

func TestFiles(t *testing.T) {
	def := filepath.Join(t.TempDir(), "mysecure.yaml")
	if got := FileToRead("", "", def); got != "" {
		t.Errorf("no flag, env or default file: %q, want none", got)
	}
	if got := FileForEdit("", "", "", def); got != def {
		t.Errorf("edit with nothing read: %q, want the default %s", got, def)
	}
	if err := os.WriteFile(def, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what, got, want string
	}{
		{"read: default exists", FileToRead("", "", def), def},
		{"read: env", FileToRead("", "/env.yaml", def), "/env.yaml"},
		{"read: flag", FileToRead("/flag.yaml", "/env.yaml", def), "/flag.yaml"},
		{"edit: the file read", FileForEdit("/read.yaml", "/flag.yaml", "/env.yaml", def), "/read.yaml"},
		{"edit: flag", FileForEdit("", "/flag.yaml", "/env.yaml", def), "/flag.yaml"},
		{"edit: env", FileForEdit("", "", "/env.yaml", def), "/env.yaml"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.what, tc.got, tc.want)
		}
	}
}

func TestKnown(t *testing.T) {
	for key, want := range map[string]bool{
		"store": true, "ssh.hosts": true, "backup-targets.offsite.url": true, "audit.udfs": true,
		"stor": false, "ssh": false, "backup-targets": false, "file": false,
	} {
		if Known(key) != want {
			t.Errorf("Known(%q) = %v, want %v", key, !want, want)
		}
	}
	for _, k := range Keys {
		if _, ok := Defaults()[k]; !ok && !strings.Contains(k, ".") && k != "schedules" {
			t.Errorf("setting %s has no default: MYSECURE_%s would not reach it", k, strings.ToUpper(strings.ReplaceAll(k, "-", "_")))
		}
	}
}
