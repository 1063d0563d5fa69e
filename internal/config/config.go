// Package config is mysecure's configuration as data: the typed settings
// every command works from, their defaults, the keys a config file may
// hold, which file is read and which one `schedule add` writes, and the
// checks a configuration must pass (Validate).
//
// cmd/mysecure reads the settings with viper (flag > MYSECURE_*
// environment > file > default) into a Config and calls Validate; the
// daemon's reload reads the sections it can change and calls
// ValidateJobs, so that both apply the same checks. This package must not
// import viper or cobra, read the environment, or print: its errors carry
// their hint (internal/hint), and every one of them is a mistake in the
// configuration (the CLI exits 2), except CheckTrusted's (a file another
// user can change: permission denied, exit 7).
package config

import (
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/mysecure/mysecure/backup/s3store"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/hardening/audit"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// Defaults of the settings (docs/configuration.md).
const (
	DefaultFile     = "/etc/mysecure/mysecure.yaml"
	DefaultStore    = "/var/lib/mysecure/storage"
	DefaultMount    = "/var/lib/mysecure/encrypted"
	DefaultSocket   = "/run/mysecure/control.sock"
	DefaultAuditLog = "/var/log/mysecure/access.log"
	DefaultLogFile  = "/var/log/mysecure/mysecure.log"
	DefaultJobSock  = "/run/mysecure/jobs.sock"
	// DefaultStateDir holds the last generation seen of each volume's
	// config and rule file (docs/configuration.md: why not in the store).
	DefaultStateDir = "/var/lib/mysecure/state"
)

// Defaults returns the default of every setting that has one, by key.
// Every key needs a default for MYSECURE_* to reach it through viper, so
// the settings without one are here too, empty.
func Defaults() map[string]any {
	return map[string]any{
		"store":            DefaultStore,
		"mount":            DefaultMount,
		"socket":           DefaultSocket,
		"state-dir":        DefaultStateDir,
		"audit-log":        DefaultAuditLog,
		"audit-allows":     false,
		"log-file":         DefaultLogFile,
		"backup-category":  "mysqlbackup",
		"job-socket":       DefaultJobSock,
		"backup-level":     1,
		"backup-group":     "",
		"dump-tool":        "",
		"physical-tool":    "",
		"client-tool":      "",
		"mbstream-tool":    "",
		"dump-args":        []string{},
		"backup-to":        []string{},
		"metrics-textfile": "",
		"physical-args":    []string{},
	}
}

// Keys are the settings a config file may hold (a target under
// backup-targets is a key of its own: see Known).
var Keys = []string{
	"store", "mount", "socket", "state-dir", "audit-log", "audit-allows", "log-file",
	"backup-category", "backup-group", "job-socket", "backup-level",
	"dump-tool", "dump-args", "physical-tool", "physical-args",
	"client-tool", "mbstream-tool", "schedules", "metrics-textfile",
	"ssh.hosts", "ssh.known-hosts", "ssh.identity",
	"audit.admins", "audit.accounts", "audit.plugins", "audit.udfs",
	"backup-to",
}

// Known reports whether key (as viper flattens it: "ssh.hosts",
// "backup-targets.offsite.url") is a setting.
func Known(key string) bool {
	return slices.Contains(Keys, key) || strings.HasPrefix(key, "backup-targets.")
}

// Config is the validated configuration every command works from, built
// from flags, MYSECURE_* environment variables and the config file, in
// that order of precedence.
type Config struct {
	Store       string `mapstructure:"store"`
	Mount       string `mapstructure:"mount"`
	Socket      string `mapstructure:"socket"`
	StateDir    string `mapstructure:"state-dir"`
	AuditLog    string `mapstructure:"audit-log"`
	AuditAllows bool   `mapstructure:"audit-allows"`
	LogFile     string `mapstructure:"log-file"`

	// Backups (docs/configuration.md).
	BackupCategory string   `mapstructure:"backup-category"`
	BackupGroup    string   `mapstructure:"backup-group"`
	JobSocket      string   `mapstructure:"job-socket"`
	BackupLevel    int      `mapstructure:"backup-level"`
	DumpTool       string   `mapstructure:"dump-tool"`
	DumpArgs       []string `mapstructure:"dump-args"`
	PhysicalTool   string   `mapstructure:"physical-tool"`
	PhysicalArgs   []string `mapstructure:"physical-args"`
	ClientTool     string   `mapstructure:"client-tool"`
	MbstreamTool   string   `mapstructure:"mbstream-tool"`

	// Object stores for backups, by name, and where `mysecure backup`
	// writes by default (docs/fleet.md).
	BackupTargets map[string]TargetConfig `mapstructure:"backup-targets"`
	BackupTo      []string                `mapstructure:"backup-to"`

	// Scheduled jobs (docs/schedules.md).
	Schedules       []schedule.Job `mapstructure:"schedules"`
	MetricsTextfile string         `mapstructure:"metrics-textfile"`

	// SSH hosts of remote backups and commands (docs/ssh.md).
	SSH sshclient.Settings `mapstructure:"ssh"`

	// harden audit's allow-lists (docs/audit.md).
	Audit Audit `mapstructure:"audit"`

	// File is the config file read ("" for none); not a setting.
	File string `mapstructure:"-"`
}

// Audit is the audit: section of the configuration file: harden audit's
// allow-lists, which that package applies.
type Audit = audit.Config

// TargetConfig is one object store under backup-targets
// (docs/configuration.md, docs/fleet.md).
type TargetConfig struct {
	URL             string `mapstructure:"url"`
	Endpoint        string `mapstructure:"endpoint"`
	Region          string `mapstructure:"region"`
	CredentialsFile string `mapstructure:"credentials-file"`
	Profile         string `mapstructure:"profile"`
	PathStyle       bool   `mapstructure:"path-style"`
	PartSizeMiB     int64  `mapstructure:"part-size-mib"`
	Concurrency     int    `mapstructure:"concurrency"`
	ObjectLockMode  string `mapstructure:"object-lock-mode"`
	ObjectLockDays  int    `mapstructure:"object-lock-days"`
}

// S3 is the object store's client configuration.
func (t TargetConfig) S3() s3store.Config {
	return s3store.Config{URL: t.URL, Endpoint: t.Endpoint, Region: t.Region, CredentialsFile: t.CredentialsFile,
		Profile: t.Profile, PathStyle: t.PathStyle, PartSize: t.PartSizeMiB << 20, Concurrency: t.Concurrency,
		LockMode: t.ObjectLockMode, LockDays: t.ObjectLockDays}
}

// Targets are where a backup with the targets given goes: those, or
// backup-to when none are given (and none there means local only).
func (c *Config) Targets(given []string) []string {
	if len(given) == 0 {
		return c.BackupTo
	}
	return given
}

// TargetsChanged reports whether two backup-targets sections differ (a
// missing section and an empty one are the same): the daemon makes its
// object-store clients at start, so a reload may not change them.
func TargetsChanged(old, cur map[string]TargetConfig) bool {
	return (len(old) > 0 || len(cur) > 0) && !reflect.DeepEqual(old, cur)
}

// FileToRead is the config file to read: flag (--config), else env
// ($MYSECURE_CONFIG), else def when it exists; "" for none.
func FileToRead(flag, env, def string) string {
	switch {
	case flag != "":
		return flag
	case env != "":
		return env
	}
	if _, err := os.Stat(def); err == nil {
		return def
	}
	return ""
}

// FileForEdit is the file `schedule add` and `policy apply` write
// schedules to: the one read, else flag (--config), else env
// ($MYSECURE_CONFIG), else def, which need not exist yet.
func FileForEdit(read, flag, env, def string) string {
	for _, f := range []string{read, flag, env} {
		if f != "" {
			return f
		}
	}
	return def
}
