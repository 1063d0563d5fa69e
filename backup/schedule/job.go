// Package schedule runs backup jobs on cron schedules: job definitions
// (shared by the daemon's scheduler and by system cron / systemd timers
// that call `mysecure backup --job NAME`), a per-job lock that a crashed
// holder releases, the run history, retention after each successful run,
// hooks, webhooks and Prometheus textfile metrics.
//
// It never prints; it reports through the *slog.Logger it is given. The
// backup itself is a function the caller passes (the daemon runs it in
// process, the CLI through the daemon or with the volume credential).
package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/retention"
)

// Job is one schedule entry of the configuration file.
type Job struct {
	Name        string   `mapstructure:"name" yaml:"name" json:"name"`
	Schedule    string   `mapstructure:"schedule" yaml:"schedule" json:"schedule"` // "0 2 * * *", "@daily", "@every 6h"
	Type        string   `mapstructure:"type" yaml:"type,omitempty" json:"type,omitempty"`
	Databases   []string `mapstructure:"databases" yaml:"databases,omitempty" json:"databases,omitempty"`
	Credentials string   `mapstructure:"credentials" yaml:"credentials,omitempty" json:"credentials,omitempty"`
	Level       int      `mapstructure:"level" yaml:"level,omitempty" json:"level,omitempty"`
	// Targets are where the job's backups go: local and names of
	// backup-targets (default: backup-to, else local).
	Targets []string `mapstructure:"targets" yaml:"targets,omitempty" json:"targets,omitempty"`

	Retention Retention `mapstructure:"retention" yaml:"retention,omitempty" json:"retention,omitempty"`

	// Jitter delays each scheduled run by a random time up to it.
	Jitter time.Duration `mapstructure:"jitter" yaml:"jitter,omitempty" json:"jitter,omitempty"`
	// Timezone of the cron expression (default: the machine's).
	Timezone string `mapstructure:"timezone" yaml:"timezone,omitempty" json:"timezone,omitempty"`
	// MaxAge: `schedule status` fails when the last success is older.
	MaxAge time.Duration `mapstructure:"max-age" yaml:"max-age,omitempty" json:"max_age,omitempty"`
	// CatchUp runs a missed run once when the daemon starts.
	CatchUp bool `mapstructure:"catch-up" yaml:"catch-up,omitempty" json:"catch_up,omitempty"`
	// Overlap is what happens when the job is still running: "skip"
	// (default: log and record a skipped run) or "queue" (wait for it).
	Overlap string `mapstructure:"overlap" yaml:"overlap,omitempty" json:"overlap,omitempty"`

	// PreHook and PostHook are shell commands (/bin/sh -c). A failing
	// pre-hook fails the run before the backup starts.
	PreHook  string `mapstructure:"pre-hook" yaml:"pre-hook,omitempty" json:"pre_hook,omitempty"`
	PostHook string `mapstructure:"post-hook" yaml:"post-hook,omitempty" json:"post_hook,omitempty"`
	// Webhook gets a POST of the run record (JSON) on failure, and on
	// success too when WebhookOnSuccess is set.
	Webhook          string `mapstructure:"webhook" yaml:"webhook,omitempty" json:"webhook,omitempty"`
	WebhookOnSuccess bool   `mapstructure:"webhook-on-success" yaml:"webhook-on-success,omitempty" json:"webhook_on_success,omitempty"`

	// SSH backs up the server of this ssh: host (a name of the ssh:
	// section, or user@host[:port]); RemoteDump runs the dump tool there
	// (docs/ssh.md).
	SSH        string `mapstructure:"ssh" yaml:"ssh,omitempty" json:"ssh,omitempty"`
	RemoteDump bool   `mapstructure:"remote-dump" yaml:"remote-dump,omitempty" json:"remote_dump,omitempty"`

	// System is set by `schedule install`: system cron or a systemd timer
	// runs the job, and the daemon's scheduler leaves it alone.
	System bool `mapstructure:"system" yaml:"system,omitempty" json:"system,omitempty"`
}

// Retention is applied to the job's own backups after each successful run.
type Retention struct {
	KeepLast    int           `mapstructure:"keep-last" yaml:"keep-last,omitempty" json:"keep_last,omitempty"`
	KeepDaily   int           `mapstructure:"keep-daily" yaml:"keep-daily,omitempty" json:"keep_daily,omitempty"`
	KeepWeekly  int           `mapstructure:"keep-weekly" yaml:"keep-weekly,omitempty" json:"keep_weekly,omitempty"`
	KeepMonthly int           `mapstructure:"keep-monthly" yaml:"keep-monthly,omitempty" json:"keep_monthly,omitempty"`
	KeepYearly  int           `mapstructure:"keep-yearly" yaml:"keep-yearly,omitempty" json:"keep_yearly,omitempty"`
	KeepWithin  time.Duration `mapstructure:"keep-within" yaml:"keep-within,omitempty" json:"keep_within,omitempty"`
}

// Policy is the retention policy; ok is false when no keep option is set
// (then nothing is pruned).
func (r Retention) Policy() (p retention.Policy, ok bool) {
	p = retention.Policy{Last: r.KeepLast, Daily: r.KeepDaily, Weekly: r.KeepWeekly, Monthly: r.KeepMonthly, Yearly: r.KeepYearly, Within: r.KeepWithin}
	return p, p != (retention.Policy{})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ErrInvalid marks a job definition that cannot run.
var ErrInvalid = errors.New("invalid schedule")

// parser reads standard 5-field expressions and descriptors
// (@daily, @every 1h); "CRON_TZ=Zone " prefixes are added from Timezone.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec returns the expression the cron library runs (with the time zone).
func (j *Job) Spec() string {
	if j.Timezone != "" {
		return "CRON_TZ=" + j.Timezone + " " + j.Schedule
	}
	return j.Schedule
}

// Parse returns the job's schedule.
func (j *Job) Parse() (cron.Schedule, error) {
	s, err := parser.Parse(j.Spec())
	if err != nil {
		return nil, fmt.Errorf("%w: job %s: schedule %q: %v", ErrInvalid, j.Name, j.Schedule, err)
	}
	return s, nil
}

// Validate checks everything that can be checked without running it, so
// that a mistake is an error at `schedule add` or at startup, not at 2 a.m.
func (j *Job) Validate() error {
	if !nameRE.MatchString(j.Name) {
		return fmt.Errorf("%w: job name %q: use letters, digits, '_' and '-'", ErrInvalid, j.Name)
	}
	if strings.TrimSpace(j.Schedule) == "" {
		return fmt.Errorf("%w: job %s has no schedule", ErrInvalid, j.Name)
	}
	if strings.Contains(j.Schedule, "TZ=") {
		return fmt.Errorf("%w: job %s: set the time zone with timezone:, not in the expression", ErrInvalid, j.Name)
	}
	if j.Timezone != "" {
		if _, err := time.LoadLocation(j.Timezone); err != nil {
			return fmt.Errorf("%w: job %s: time zone %q: %v", ErrInvalid, j.Name, j.Timezone, err)
		}
	}
	if _, err := j.Parse(); err != nil {
		return err
	}
	o := j.Options()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: job %s: %v", ErrInvalid, j.Name, err)
	}
	if j.Credentials != "" && !backup.ValidCredentialsName(j.Credentials) {
		return fmt.Errorf("%w: job %s: credentials name %q", ErrInvalid, j.Name, j.Credentials)
	}
	if j.RemoteDump && j.SSH == "" {
		return fmt.Errorf("%w: job %s: remote-dump needs ssh: HOST", ErrInvalid, j.Name)
	}
	switch j.Overlap {
	case "", "skip", "queue":
	default:
		return fmt.Errorf("%w: job %s: overlap %q: want skip or queue", ErrInvalid, j.Name, j.Overlap)
	}
	if j.Jitter < 0 || j.MaxAge < 0 {
		return fmt.Errorf("%w: job %s: negative duration", ErrInvalid, j.Name)
	}
	if p, ok := j.Retention.Policy(); ok {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: job %s: retention: %v", ErrInvalid, j.Name, err)
		}
	}
	if j.Webhook != "" && !strings.HasPrefix(j.Webhook, "http://") && !strings.HasPrefix(j.Webhook, "https://") {
		return fmt.Errorf("%w: job %s: webhook %q is not an http(s) URL", ErrInvalid, j.Name, j.Webhook)
	}
	return nil
}

// Options are the backup options of one run.
func (j *Job) Options() backup.Options {
	o := backup.Options{Type: j.Type, Databases: j.Databases, Credentials: j.Credentials, Level: j.Level, Job: j.Name, Targets: j.Targets}
	if j.SSH != "" {
		o.SSH = &backup.SSHOptions{Host: j.SSH, RemoteDump: j.RemoteDump}
	}
	return o
}

// ValidateAll checks a set of jobs, names included.
func ValidateAll(jobs []Job) error {
	seen := map[string]bool{}
	for i := range jobs {
		if err := jobs[i].Validate(); err != nil {
			return err
		}
		if seen[jobs[i].Name] {
			return fmt.Errorf("%w: two jobs are named %s", ErrInvalid, jobs[i].Name)
		}
		seen[jobs[i].Name] = true
	}
	return nil
}

// Find returns the job called name.
func Find(jobs []Job, name string) (*Job, error) {
	for i := range jobs {
		if jobs[i].Name == name {
			return &jobs[i], nil
		}
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no job named %q (no schedules are configured)", backup.ErrNotFound, name)
	}
	return nil, fmt.Errorf("%w: no job named %q (configured: %s)", backup.ErrNotFound, name, strings.Join(names, ", "))
}
