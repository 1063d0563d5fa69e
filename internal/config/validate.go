package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// Hints of Validate's errors.
const (
	HintSchedule = "fix the schedule in the config file; 'mysecure schedule list' shows the jobs"
	HintTargets  = "docs/fleet.md describes backup-targets and backup-to"
	HintSSH      = "docs/ssh.md describes the ssh: section"
	HintLevel    = "zstd levels go from 1 to 22 (1 is the default)"
)

// Validate checks a whole configuration and completes it: the sections
// of ValidateJobs, the backup level, the settings that must not be
// empty; relative paths are made absolute (they are used by a daemon
// whose working directory is /). c.File names the file in the errors.
func Validate(c *Config) error {
	if err := ValidateJobs(c); err != nil {
		return err
	}
	if c.BackupLevel < 1 || c.BackupLevel > 22 {
		return hint.Wrap(fmt.Errorf("backup-level %d is out of range", c.BackupLevel), HintLevel)
	}
	for _, s := range []struct{ name, val string }{
		{"store", c.Store}, {"mount", c.Mount}, {"socket", c.Socket}, {"state-dir", c.StateDir},
		{"audit-log", c.AuditLog}, {"backup-category", c.BackupCategory}, {"job-socket", c.JobSocket},
	} {
		if s.val == "" {
			return errors.New(s.name + " must not be empty")
		}
	}
	for _, p := range []*string{&c.Store, &c.Mount, &c.Socket, &c.StateDir, &c.AuditLog, &c.LogFile, &c.JobSocket, &c.MetricsTextfile} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	return nil
}

// ValidateJobs checks the sections a daemon reload re-reads (schedules,
// backup-targets, backup-to, ssh) and gives a job without targets: the
// backup-to list.
func ValidateJobs(c *Config) error {
	if err := schedule.ValidateAll(c.Schedules); err != nil {
		return inFile(c, err, HintSchedule)
	}
	if err := validateTargets(c); err != nil {
		return inFile(c, err, HintTargets)
	}
	for i := range c.Schedules {
		c.Schedules[i].Targets = c.Targets(c.Schedules[i].Targets)
	}
	if err := ValidateSSH(c); err != nil {
		return inFile(c, err, HintSSH)
	}
	return nil
}

// inFile is err about c's config file, on one line, with its hint.
func inFile(c *Config, err error, h string) error {
	return hint.Wrap(fmt.Errorf("config file %s: %s", c.File, strings.Join(strings.Fields(err.Error()), " ")), h)
}

// validateTargets checks backup-targets and backup-to, and the targets
// of the jobs.
func validateTargets(c *Config) error {
	for name, t := range c.BackupTargets {
		if name == backup.LocalTarget || name == "" {
			return fmt.Errorf("backup-targets: %q is not a name for an object store", name)
		}
		cfg := t.S3()
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("backup-targets.%s: %v", name, err)
		}
	}
	for _, n := range c.BackupTo {
		if _, ok := c.BackupTargets[n]; !ok && n != backup.LocalTarget {
			return fmt.Errorf("backup-to names %q, which is not local nor under backup-targets", n)
		}
	}
	for _, j := range c.Schedules {
		for _, n := range j.Targets {
			if _, ok := c.BackupTargets[n]; !ok && n != backup.LocalTarget {
				return fmt.Errorf("schedule %s: target %q is not local nor under backup-targets", j.Name, n)
			}
		}
	}
	return nil
}

// CheckReload refuses a daemon reload (reloaded, read from its File)
// that changes the backup targets of the running configuration: the
// daemon made its object-store clients at start, so a reload can change
// which targets jobs use (backup-to, targets:), not the targets.
func CheckReload(running, reloaded *Config) error {
	if TargetsChanged(running.BackupTargets, reloaded.BackupTargets) {
		return hint.Wrap(fmt.Errorf("%w: %s: backup-targets changed since the daemon started; nothing was reloaded", backup.ErrUsage, reloaded.File),
			"restart the daemon (mysecure umount, then mysecure mount) to use the new targets")
	}
	return nil
}

// ValidateSSH checks the ssh: section and that every schedule's ssh host
// is one of its names (a typo must not become a DNS lookup at 2 a.m.).
func ValidateSSH(c *Config) error {
	if err := c.SSH.Validate(); err != nil {
		return err
	}
	for _, j := range c.Schedules {
		if _, ok := c.SSH.Lookup(j.SSH); j.SSH != "" && !ok && !strings.Contains(j.SSH, "@") {
			return fmt.Errorf("%w: schedule %s: ssh host %q is not in the ssh: section (or write user@host)", sshclient.ErrConfig, j.Name, j.SSH)
		}
		if j.SSH != "" {
			if _, err := c.SSH.Resolve(j.SSH); err != nil {
				return fmt.Errorf("schedule %s: %w", j.Name, err)
			}
		}
	}
	return nil
}
