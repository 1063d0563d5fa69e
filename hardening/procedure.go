package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/internal/hint"

	"github.com/mysecure/mysecure/internal/procfs"
)

// The procedure of `mysecure harden mysqld` and of its --undo, for the
// CLI and for the policy step (GuardStep): the same steps, in the same
// order, recorded in the same state file.

// StepName is a step of the harden procedure as the state file records
// it (Plan.Done). The values are part of the state file's format: hosts
// hardened by an older mysecure have them on disk, and --undo reads them.
// Never change a value; add a new name instead (TestStepNamesFrozen).
type StepName string

// The steps, in the order Apply runs them (Undo reverts them backwards).
const (
	StepInstallGuard       StepName = "install guard"
	StepEncryptBinary      StepName = "encrypt binary"
	StepEncryptGuardConfig StepName = "encrypt guard config"
	StepEncryptDataDir     StepName = "encrypt datadir"
	// StepRule(i) adds Plan.Rules[i].
	StepOptionFile StepName = "option file"
	StepDropIns    StepName = "systemd drop-ins"
	// StepPlainServerRule is recorded by an undo that gave the original
	// binary the rule it needs (a datadir that stays in @mysql), so that
	// an undo run again does not add it twice.
	StepPlainServerRule StepName = "plain server rule"
)

// StepRule names the step that adds Plan.Rules[i] ("rule 1" is i = 0).
func StepRule(i int) StepName { return StepName(fmt.Sprintf("rule %d", i+1)) }

// EventKind says what a Procedure event reports.
type EventKind string

// The events of a Procedure.
const (
	EventDone     EventKind = "done"     // a step applied
	EventReverted EventKind = "reverted" // a step undone
	EventAdded    EventKind = "added"    // undo added the plain server's rule
	EventNotice   EventKind = "notice"   // something worth saying that is no failure
)

// Event is one report of a Procedure.
type Event struct {
	Kind EventKind
	Step StepName
	Text string
}

// Procedure applies and undoes a harden Plan through the daemon. It
// never prints: every step is reported through Report.
type Procedure struct {
	Client *daemon.Client
	// Credential returns the master credential for admin changes (nil
	// when the daemon is in admin mode). It is called once, when the
	// first change needs it; the caller owns and wipes what it returns.
	Credential func(context.Context) (*daemon.Credential, error)
	Report     func(Event)
	// Reload runs after the systemd drop-ins change (default: systemctl
	// daemon-reload when systemd runs the host).
	Reload func() error

	cred    *daemon.Credential
	credSet bool
}

func (h *Procedure) report(k EventKind, s StepName, text string) {
	if h.Report != nil {
		h.Report(Event{Kind: k, Step: s, Text: text})
	}
}

func (h *Procedure) credential(ctx context.Context) (*daemon.Credential, error) {
	if h.credSet {
		return h.cred, nil
	}
	if h.Credential != nil {
		c, err := h.Credential(ctx)
		if err != nil {
			return nil, err
		}
		h.cred = c
	}
	h.credSet = true
	return h.cred, nil
}

func (h *Procedure) reload() {
	f := h.Reload
	if f == nil {
		f = SystemdReload
	}
	if err := f(); err != nil {
		h.report(EventNotice, StepDropIns, err.Error())
	}
}

// SystemdReload runs systemctl daemon-reload when systemd runs the host.
func SystemdReload() error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return nil // systemd is not running here
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl daemon-reload failed: %v %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RunningFrom returns the pids of processes executing bin.
func RunningFrom(bin string) []int {
	var pids []int
	all, _ := procfs.Pids()
	for _, pid := range all {
		if t, err := procfs.Exe(pid); err == nil && procfs.TrimDeleted(t) == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Refusals lists every reason Apply refuses to harden (after Detect:
// the state file does not exist yet), each with a hint (internal/hint)
// saying what to do about it: no daemon, rules that open @mysql
// to other programs (unless keepRules), the server running. A rule for
// the backup tool alone is kept, not refused (the plan records it).
func (h *Procedure) Refusals(ctx context.Context, p *Plan, keepRules bool) []error {
	var out []error
	if _, err := h.Client.Status(ctx); err != nil {
		out = append(out, hint.Wrap(err, "mount the volume first ('mysecure mount')"))
	} else if rl, err := h.Client.ACLList(ctx); err != nil {
		out = append(out, err)
	} else {
		// Other rules that open @mysql (a rule for the unencrypted
		// binary's path, a shell, a broad rule for every category) would
		// let a copy of the binary or another program read the datadir
		// around the guard.
		var open []string
		for _, r := range rl.Rules {
			if r.Rule.Action != acl.Allow || (r.Rule.Category != "mysql" && r.Rule.Category != acl.AllCategories) {
				continue
			}
			if p.IsBackupToolRule(r.Rule) {
				if p.BackupRuleKept == "" {
					p.KeepBackupRule(r.Text)
				}
				continue
			}
			open = append(open, fmt.Sprintf("%d: %s", r.Index, r.Text))
		}
		if len(open) > 0 && !keepRules {
			out = append(out, hint.Wrap(fmt.Errorf("%w: rules already open @mysql to other programs (%s)", inplace.ErrRefused, strings.Join(open, "; ")),
				"remove them ('mysecure acl del N'): they would let a copy of the server read the datadir around the guard (a rule for the backup tool alone is kept); or pass --keep-existing-rules"))
		}
	}
	if pids := RunningFrom(p.Binary); len(pids) > 0 {
		out = append(out, hint.Wrap(fmt.Errorf("%w: the server is running (pid %v)", inplace.ErrInUse, pids), "stop it first (systemctl stop mariadb)"))
	}
	return out
}

// StepError is a step of Apply or Undo that failed: what was done before
// it is recorded in the state file.
type StepError struct {
	Step      StepName
	Undo      bool
	StatePath string
	Err       error
}

func (e *StepError) Error() string {
	if e.Undo {
		return fmt.Sprintf("undo %s: %v (the undo stopped there; what is left is recorded in %s: run --undo again)", e.Step, e.Err, e.StatePath)
	}
	return fmt.Sprintf("%s: %v (what was done is recorded in %s: --undo reverts it)", e.Step, e.Err, e.StatePath)
}

func (e *StepError) Unwrap() error { return e.Err }

// Apply hardens the server as p says: the guard installed, the binary,
// the guard's configuration and (unless it is there already) the datadir
// moved into the mount, the rules added, the option file and systemd
// drop-ins written. The state file is written before the first change
// and records each step as it is done; on a failure Apply stops and
// returns a *StepError (Undo reverts what was done). Run Refusals first.
func (h *Procedure) Apply(ctx context.Context, p *Plan) error {
	cred, err := h.credential(ctx)
	if err != nil {
		return err
	}
	if err := p.Save(); err != nil {
		return err
	}
	step := func(name StepName, fn func() error) error {
		if err := fn(); err != nil {
			return &StepError{Step: name, StatePath: p.StatePath, Err: err}
		}
		h.report(EventDone, name, string(name))
		return p.Mark(name)
	}
	if err := step(StepInstallGuard, p.InstallGuard); err != nil {
		return err
	}
	sess, err := h.Client.BeginMove(ctx, daemon.MoveBeginRequest{Credential: cred})
	if err != nil {
		return err
	}
	mopts := inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store}
	err = step(StepEncryptBinary, func() error {
		return inplace.Encrypt(ctx, p.Binary, filepath.Join(sess.Mount, "protected", p.Binary), mopts)
	})
	if err == nil {
		err = step(StepEncryptGuardConfig, func() error {
			return inplace.Encrypt(ctx, p.GuardConfig, p.GuardConfigInMount(sess.Mount), mopts)
		})
	}
	if err == nil && p.EncryptDataDir {
		err = step(StepEncryptDataDir, func() error {
			return inplace.Encrypt(ctx, p.DataDir, filepath.Join(sess.Mount, "mysql", p.DataDir), mopts)
		})
	}
	h.Client.EndMove(context.Background())
	if err != nil {
		return err
	}
	for i, r := range p.Rules {
		if err := step(StepRule(i), func() error {
			_, err := h.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: r, Credential: cred})
			return err
		}); err != nil {
			return err
		}
	}
	if p.CnfFile != "" {
		if err := step(StepOptionFile, func() error { return WriteFile(p.CnfFile, p.CnfContent, 0o644) }); err != nil {
			return err
		}
	}
	if len(p.DropIns) > 0 {
		if err := step(StepDropIns, func() error {
			for _, d := range p.DropIns {
				if err := WriteFile(d.Path, d.Content, 0o644); err != nil {
					return err
				}
			}
			h.reload()
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// UndoOptions tune Undo.
type UndoOptions struct {
	// NoPlainServerRule: a datadir that was in @mysql before hardening
	// does not get a rule for the original binary. For a caller that
	// moves the datadir out of @mysql itself next (a policy's rollback);
	// the CLI's --undo leaves a startable server and adds it.
	NoPlainServerRule bool
}

// UndoResult says what became of the datadir.
type UndoResult struct {
	// PlainRule is the rule given to the original binary for a datadir
	// that stays in @mysql ("" when the datadir was decrypted, or with
	// NoPlainServerRule).
	PlainRule string
}

// Undo reverts the steps p records as done, backwards, and removes the
// state file. A running server is refused before anything changes. On
// a failure it stops with a *StepError; what is left stays recorded, and
// Undo run again continues.
func (h *Procedure) Undo(ctx context.Context, p *Plan, o UndoOptions) (*UndoResult, error) {
	if _, err := h.Client.Status(ctx); err != nil {
		return nil, err
	}
	// A running server first, then the credential: without either nothing
	// below can be completed, and a half undone setup could not start the
	// server.
	if pids := append(RunningFrom(p.MountBinary), RunningFrom(p.Binary)...); len(pids) > 0 {
		return nil, hint.Wrap(fmt.Errorf("%w: the server is running (pid %v); nothing was changed", inplace.ErrInUse, pids), "stop it first (systemctl stop mariadb)")
	}
	if p.Did(StepRule(0)) || p.Did(StepEncryptBinary) {
		if _, err := h.credential(ctx); err != nil {
			return nil, err
		}
	}
	undo := func(name StepName, fn func() error) error {
		if !p.Did(name) {
			return nil
		}
		if err := fn(); err != nil {
			return &StepError{Step: name, Undo: true, StatePath: p.StatePath, Err: err}
		}
		h.report(EventReverted, name, string(name))
		return p.Unmark(name)
	}
	if err := undo(StepDropIns, func() error {
		for _, d := range p.DropIns {
			if err := RemoveFile(d.Path); err != nil {
				return err
			}
		}
		h.reload()
		return nil
	}); err != nil {
		return nil, err
	}
	if err := undo(StepOptionFile, func() error { return RemoveFile(p.CnfFile) }); err != nil {
		return nil, err
	}
	for i := len(p.Rules) - 1; i >= 0; i-- {
		r := p.Rules[i]
		if err := undo(StepRule(i), func() error {
			cr, err := h.credential(ctx)
			if err != nil {
				return err
			}
			_, err = h.Client.ACL(ctx, daemon.ACLRequest{Op: "del", Rule: r, Credential: cr})
			return err
		}); err != nil {
			return nil, err
		}
	}
	if p.Did(StepEncryptDataDir) || p.Did(StepEncryptBinary) || p.Did(StepEncryptGuardConfig) {
		cr, err := h.credential(ctx)
		if err != nil {
			return nil, err
		}
		sess, err := h.Client.BeginMove(ctx, daemon.MoveBeginRequest{Credential: cr})
		if err != nil {
			return nil, err
		}
		mopts := inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store}
		err = undo(StepEncryptDataDir, func() error {
			return inplace.Decrypt(ctx, p.DataDir, filepath.Join(sess.Mount, "mysql", p.DataDir), mopts)
		})
		if err == nil {
			err = undo(StepEncryptGuardConfig, func() error {
				return inplace.Decrypt(ctx, p.GuardConfig, p.GuardConfigInMount(sess.Mount), mopts)
			})
		}
		if err == nil {
			err = undo(StepEncryptBinary, func() error {
				return inplace.Decrypt(ctx, p.Binary, filepath.Join(sess.Mount, "protected", p.Binary), mopts)
			})
		}
		h.Client.EndMove(context.Background())
		if err != nil {
			return nil, err
		}
	}
	// A datadir that was in @mysql before hardening stays there: the
	// original binary, back in its place, gets the rule it needs, bound
	// to the datadir (harden asked for other @mysql rules to go).
	res := &UndoResult{}
	if !p.EncryptDataDir && !o.NoPlainServerRule {
		rule, err := PlainServerRule(p)
		if err != nil {
			return nil, err
		}
		res.PlainRule = rule
		if !p.Did(StepPlainServerRule) {
			cr, err := h.credential(ctx)
			if err != nil {
				return nil, err
			}
			_, err = h.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: rule, Credential: cr})
			if err != nil && !errors.Is(err, daemon.ErrConflict) { // the rule is there already
				return nil, fmt.Errorf("add the rule the plain server needs (%s): %w (the undo stopped there: run --undo again)", rule, err)
			}
			h.report(EventAdded, StepPlainServerRule, rule+" (the datadir stays in @mysql)")
			if err := p.Mark(StepPlainServerRule); err != nil {
				return nil, err
			}
		}
	}
	if err := undo(StepInstallGuard, p.RemoveGuard); err != nil {
		return nil, err
	}
	if err := os.Remove(p.StatePath); err != nil {
		return nil, err
	}
	return res, nil
}
