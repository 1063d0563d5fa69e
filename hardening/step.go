package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
)

// ErrNotHardened: the guard is not in front of the server, and this
// step does not install it by itself.
var ErrNotHardened = errors.New("the skip-grant-tables guard is not in front of the server")

// GuardStep is the plan step (package internal/plan) "the skip-grant-
// tables guard is in front of the server". Check compares the recorded
// harden state with the host: every step done, the wrapper in place, the
// server binary's path a symlink into @protected, the guard's rules in
// force, its option file and systemd drop-ins present.
type GuardStep struct {
	Options Options
	Client  *daemon.Client
}

func (s *GuardStep) statePath() string {
	if s.Options.StatePath != "" {
		return s.Options.StatePath
	}
	return DefaultStatePath
}

func (s *GuardStep) ID() string { return "harden:mysqld:" + s.statePath() }
func (s *GuardStep) Describe() string {
	bin := s.Options.Binary
	if bin == "" {
		bin = "the server"
	}
	return fmt.Sprintf("the skip-grant-tables guard is in front of %s (state %s)", bin, s.statePath())
}

func (s *GuardStep) Check(ctx context.Context) (bool, string, error) {
	p, err := LoadState(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Sprintf("guard missing: %s is not hardened (no %s)", orServer(s.Options.Binary), s.statePath()), nil
	}
	if err != nil {
		return false, "", err
	}
	for _, step := range []string{"install guard", "encrypt binary", "encrypt guard config"} {
		if !p.Did(step) {
			return false, fmt.Sprintf("guard incomplete: harden step %q was not done ('mysecure harden mysqld --undo', then again)", step), nil
		}
	}
	if fi, err := os.Stat(p.Wrapper); err != nil || fi.Mode()&0o111 == 0 {
		return false, fmt.Sprintf("guard missing: the wrapper %s is gone", p.Wrapper), nil
	}
	if t, err := os.Readlink(p.Binary); err != nil || t != p.MountBinary {
		return false, fmt.Sprintf("guard bypassed: %s is no longer the symlink into @protected (%s); a package upgrade may have put a plain binary back: run 'mysecure harden mysqld --undo' and harden again", p.Binary, p.MountBinary), nil
	}
	if p.CnfFile != "" {
		if _, err := os.Stat(p.CnfFile); err != nil {
			return false, fmt.Sprintf("guard bypassed: %s (mysqld_safe starts the guard) is missing", p.CnfFile), nil
		}
	}
	for _, d := range p.DropIns {
		if _, err := os.Stat(d.Path); err != nil {
			return false, fmt.Sprintf("guard bypassed: the systemd drop-in %s is missing", d.Path), nil
		}
	}
	if s.Client != nil {
		list, err := s.Client.ACLList(ctx)
		if err != nil {
			return false, "", err
		}
		for _, text := range p.Rules {
			want, err := acl.ParseRule(text)
			if err != nil {
				return false, "", err
			}
			found := false
			for _, r := range list.Rules {
				found = found || r.Rule.Equal(want)
			}
			if !found {
				return false, "rule missing: " + text + " (the guard's)", nil
			}
		}
	}
	return true, "", nil
}

// Apply does not install the guard: 'mysecure harden mysqld' does, with
// its own plan, dry run and undo.
func (s *GuardStep) Apply(context.Context) error {
	return fmt.Errorf("%w: install it with 'mysecure harden mysqld' (stop the server first), then apply again", ErrNotHardened)
}

// Undo has nothing to revert: Apply changes nothing.
func (s *GuardStep) Undo(context.Context) error { return nil }

func orServer(bin string) string {
	if bin == "" {
		return "the server"
	}
	return bin
}
