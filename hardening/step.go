package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

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
//
// Apply runs the harden procedure (Procedure.Apply, as `mysecure harden
// mysqld` does, with the same refusals); a failure half way is undone
// before Apply returns. On a host hardened already whose only drift is a
// missing rule of the guard, Apply adds the rule back. Undo reverts what
// Apply did: the whole procedure, or the rules it added back.
type GuardStep struct {
	Options Options
	Client  *daemon.Client
	// Cred is the master credential for the changes (nil when the daemon
	// is in admin mode). The caller owns and wipes it.
	Cred *daemon.Credential
	// Report, when set, gets the procedure's steps.
	Report func(Event)

	// what Apply did, for Undo
	ran      bool
	hardened bool
	readded  []string
}

func (s *GuardStep) statePath() string { return StateFile(s.Options.StatePath) }

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
	for _, step := range []StepName{StepInstallGuard, StepEncryptBinary, StepEncryptGuardConfig} {
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

func (s *GuardStep) procedure() *Procedure {
	return &Procedure{Client: s.Client, Report: s.Report,
		Credential: func(context.Context) (*daemon.Credential, error) { return s.Cred, nil }}
}

func (s *GuardStep) Apply(ctx context.Context) error {
	s.ran = true
	o := s.Options
	o.StatePath = s.statePath()
	if p, err := LoadState(o.StatePath); err == nil {
		return s.repair(ctx, p)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p, err := Detect(o)
	if err != nil {
		return err
	}
	proc := s.procedure()
	if refusals := proc.Refusals(ctx, p, false); len(refusals) > 0 {
		return refusals[0]
	}
	if err := proc.Apply(ctx, p); err != nil {
		// Leave nothing half done: the plan runner undoes only the steps
		// that completed.
		if _, uerr := proc.Undo(context.Background(), p, UndoOptions{NoPlainServerRule: true}); uerr != nil {
			return fmt.Errorf("%w; undoing it failed too: %v", err, uerr)
		}
		return err
	}
	s.hardened = true
	return nil
}

// repair puts back the guard's rules missing on a hardened host; any
// other drift needs the admin (the binary replaced by a package upgrade,
// files removed).
func (s *GuardStep) repair(ctx context.Context, p *Plan) error {
	if done, drift, err := s.Check(ctx); err != nil {
		return err
	} else if done {
		return nil
	} else if !strings.HasPrefix(drift, "rule missing: ") {
		return fmt.Errorf("%w: %s", ErrNotHardened, drift)
	}
	list, err := s.Client.ACLList(ctx)
	if err != nil {
		return err
	}
	for _, text := range p.Rules {
		want, err := acl.ParseRule(text)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(list.Rules, func(r daemon.RuleInfo) bool { return r.Rule.Equal(want) }) {
			continue
		}
		if _, err := s.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: text, Credential: s.Cred}); err != nil {
			return err
		}
		s.readded = append(s.readded, text)
	}
	return nil
}

// Undo reverts what Apply did: the rules it put back, or the whole
// harden procedure (without a rule for the plain binary: the plan's own
// steps own the datadir). A step that did not run in this process (the
// rollback of a run killed half way, which recorded it as applied) undoes
// the procedure its state file records.
func (s *GuardStep) Undo(ctx context.Context) error {
	if !s.ran {
		if _, err := os.Stat(s.statePath()); err != nil {
			return nil
		}
		s.hardened = true
	}
	for i := len(s.readded) - 1; i >= 0; i-- {
		if _, err := s.Client.ACL(ctx, daemon.ACLRequest{Op: "del", Rule: s.readded[i], Credential: s.Cred}); err != nil {
			return err
		}
		s.readded = s.readded[:i]
	}
	if !s.hardened {
		return nil
	}
	p, err := LoadState(s.statePath())
	if err != nil {
		return err
	}
	if _, err := s.procedure().Undo(ctx, p, UndoOptions{NoPlainServerRule: true}); err != nil {
		return err
	}
	s.hardened = false
	return nil
}

func orServer(bin string) string {
	if bin == "" {
		return "the server"
	}
	return bin
}
