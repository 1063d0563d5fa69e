// Package admin does the mount's admin changes through the daemon, for
// the CLI and for plans: moving paths into and out of the mount in a
// move session (what `mysecure encrypt` and `decrypt` do), adding and
// removing categories (also offline, on the volume config), and the plan
// steps (package internal/plan) that need a category, move a path into
// it, or add a rule.
//
// It never prints: callers get lines through callbacks. It holds no
// credential beyond the call that uses it and never wipes the caller's.
package admin

import (
	"context"
	"path/filepath"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/encfs/volume"
)

// Conn is a daemon and the credential for admin changes (nil when the
// daemon is in admin mode). The caller owns Cred and wipes it.
type Conn struct {
	Client *daemon.Client
	Cred   *daemon.Credential
}

// MoveOptions tune Move.
type MoveOptions struct {
	// Force moves a path even if a process has a file under it open.
	Force bool
	// Recovered gets one line per interrupted move completed or rolled
	// back before this one.
	Recovered func(string)
	// Moved gets each path once it has moved (dst is in the mount).
	Moved func(path, dst string)
}

// Move moves paths (absolute) into category cat of the mount (encrypt) or
// back out of it. This process does the copying itself, in a move session
// the daemon grants it (the daemon never writes into its own mount).
// Interrupted moves are journaled in the store and completed or rolled
// back by the next move or mount.
func Move(ctx context.Context, c Conn, encrypt bool, cat string, paths []string, o MoveOptions) error {
	sess, err := c.Client.BeginMove(ctx, daemon.MoveBeginRequest{Credential: c.Cred})
	if err != nil {
		return err
	}
	defer c.Client.EndMove(context.Background())
	if err := volume.CheckCategory(cat, sess.Categories); err != nil {
		return err
	}
	opts := inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store, Force: o.Force}
	if err := recoverMoves(opts, o.Recovered); err != nil {
		return err
	}
	for _, p := range paths {
		dst := filepath.Join(sess.Mount, cat, p)
		if encrypt {
			err = inplace.Encrypt(ctx, p, dst, opts)
		} else {
			err = inplace.Decrypt(ctx, p, dst, opts)
		}
		if err != nil {
			return err
		}
		if o.Moved != nil {
			o.Moved(p, dst)
		}
	}
	return nil
}

// Recover completes or rolls back the moves a crash interrupted, in a
// move session begun with req: the one-time token the mount hands to
// the process it starts for this, or the master credential. recovered,
// when set, gets one line per move.
func Recover(ctx context.Context, c *daemon.Client, req daemon.MoveBeginRequest, recovered func(string)) error {
	sess, err := c.BeginMove(ctx, req)
	if err != nil {
		return err
	}
	defer c.EndMove(context.Background())
	return recoverMoves(inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store}, recovered)
}

func recoverMoves(opts inplace.Options, recovered func(string)) error {
	res, err := inplace.Recover(opts)
	if recovered != nil {
		for _, r := range res {
			recovered(r)
		}
	}
	return err
}
