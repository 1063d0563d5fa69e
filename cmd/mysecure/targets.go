package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/s3store"
)

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

func (t TargetConfig) s3() s3store.Config {
	return s3store.Config{URL: t.URL, Endpoint: t.Endpoint, Region: t.Region, CredentialsFile: t.CredentialsFile,
		Profile: t.Profile, PathStyle: t.PathStyle, PartSize: t.PartSizeMiB << 20, Concurrency: t.Concurrency,
		LockMode: t.ObjectLockMode, LockDays: t.ObjectLockDays}
}

// validateTargets checks backup-targets and backup-to.
func validateTargets(c *Config) error {
	for name, t := range c.BackupTargets {
		if name == backup.LocalTarget || name == "" {
			return fmt.Errorf("backup-targets: %q is not a name for an object store", name)
		}
		cfg := t.s3()
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

// remotes builds the object stores of backup-targets (no connection yet).
func remotes(c *Config) (map[string]backup.ObjectStore, error) {
	if len(c.BackupTargets) == 0 {
		return nil, nil
	}
	out := map[string]backup.ObjectStore{}
	names := make([]string, 0, len(c.BackupTargets))
	for n := range c.BackupTargets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := s3store.New(context.Background(), c.BackupTargets[n].s3())
		if err != nil {
			return nil, withHint(fmt.Errorf("backup target %s: %w", n, err), "docs/fleet.md describes backup-targets")
		}
		out[n] = st
	}
	return out, nil
}

const hintLocked = "the bucket's object lock keeps it until the date shown; prune keeps it until then"

const hintObjectStore = "check the target's endpoint, bucket and credentials (docs/fleet.md); nothing was added to its catalog"
