package service

import (
	"context"
	"time"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/daemon"
)

// DeniedOf converts the daemon's denial groups for a tool's error.
func DeniedOf(gs []daemon.DenialGroup) []backup.Denied {
	var out []backup.Denied
	for _, g := range gs {
		out = append(out, backup.Denied{Program: g.Program, Files: g.Files, Count: g.Count, Rule: g.Rule, Hint: g.Hint})
	}
	return out
}

// ClientDenials is the denial source of a backup that runs outside the
// daemon (the CLI's --local): the daemon at c, if one serves the mount,
// saw what its rules denied the tools. A daemon that does not answer
// reports nothing.
func ClientDenials(c *daemon.Client) backup.DenialSource {
	return func(ctx context.Context, since time.Time, pgid int) []backup.Denied {
		r, err := c.Denials(ctx, daemon.DenialQuery{Since: since, Pgid: pgid})
		if err != nil {
			return nil
		}
		return DeniedOf(r.Groups)
	}
}
