package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/s3store"
)

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
		st, err := s3store.New(context.Background(), c.BackupTargets[n].S3())
		if err != nil {
			return nil, withHint(fmt.Errorf("backup target %s: %w", n, err), "docs/fleet.md describes backup-targets")
		}
		out[n] = st
	}
	return out, nil
}

const hintLocked = "the bucket's object lock keeps it until the date shown; prune keeps it until then"

const hintObjectStore = "check the target's endpoint, bucket and credentials (docs/fleet.md); nothing was added to its catalog"
