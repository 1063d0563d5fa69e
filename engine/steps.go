package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/hardening/guard"
	"github.com/mysecure/mysecure/internal/atomicfile"
	"github.com/mysecure/mysecure/internal/plan"
)

// ErrForeignFile: a file engine mode would write exists and was not
// written by it.
var ErrForeignFile = errors.New("exists and was not written by mysecure")

// Setup is engine mode planned for one server.
type Setup struct {
	Opts Options
	Conn admin.Conn
	// Hardened is the harden state when the guard is in front of the
	// server (nil otherwise).
	Hardened *hardening.Plan
}

// NewSetup fills o and reads the harden state.
func NewSetup(o Options, conn admin.Conn) (*Setup, error) {
	if err := o.Fill(); err != nil {
		return nil, err
	}
	s := &Setup{Opts: o, Conn: conn}
	if o.HardenState != "" {
		p, err := hardening.LoadState(o.HardenState)
		switch {
		case err == nil:
			s.Hardened = p
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return s, nil
}

// ServerProgram is the program the key rule names: the real binary in the
// mount on a hardened server, else the installed binary.
func (s *Setup) ServerProgram() string {
	if s.Hardened != nil {
		return s.Hardened.MountBinary
	}
	return s.Opts.Binary
}

// Rules are the access rules on the key material.
func (s *Setup) Rules() []string {
	pat := s.Opts.KeyPattern()
	if s.Opts.Flavor == MySQL {
		pat = strings.TrimPrefix(filepath.Dir(s.Opts.KeyPath), "/") + "/*"
	}
	rules := []string{fmt.Sprintf("ALLOW @protected %s %s --user=%s", pat, s.ServerProgram(), s.Opts.User)}
	if s.Opts.BackupTool != "" {
		rules = append(rules, fmt.Sprintf("ALLOW @protected %s %s --user=0", pat, s.Opts.BackupTool))
	}
	return rules
}

// Steps is the enable plan, in order: key material, rules, the guard's
// plugin list (hardened MariaDB), the option file.
func (s *Setup) Steps() []plan.Step {
	steps := []plan.Step{&admin.CategoryStep{Conn: s.Conn, Category: "protected"}, &KeyFileStep{Setup: s}}
	for i, r := range s.Rules() {
		if i == 0 && s.Hardened != nil {
			// Only the guard may open the real binary: the rule is
			// fingerprinted by the daemon, not here.
			steps = append(steps, &guardedRuleStep{RuleStep: admin.RuleStep{Conn: s.Conn, Rule: r}})
			continue
		}
		steps = append(steps, &admin.RuleStep{Conn: s.Conn, Rule: r})
	}
	if s.Hardened != nil && s.Opts.Flavor == MariaDB {
		steps = append(steps, &GuardStep{Setup: s, Phase: Encrypting, UndoPhase: Off})
	}
	for _, m := range s.Opts.ManifestFiles("") {
		steps = append(steps, &ManifestStep{File: m})
	}
	steps = append(steps, &CnfStep{Path: s.Opts.CnfPath(), Content: s.Opts.ServerConfig()})
	return steps
}

// ForeignRules lists rules in force that open the key file to programs
// other than those of Rules (a rule for the binary before hardening, a
// wide rule on @protected): each lets that program read the engine keys.
func (s *Setup) ForeignRules(ctx context.Context) ([]string, error) {
	list, err := s.Conn.Client.ACLList(ctx)
	if err != nil {
		return nil, err
	}
	var want []acl.Rule
	for _, text := range s.Rules() {
		r, err := acl.ParseRule(text)
		if err != nil {
			return nil, err
		}
		// The real binary behind the guard cannot be opened here to
		// fingerprint it; the comparison needs only its path.
		_ = acl.NewIdentifier(acl.IdentifierOptions{}).FillRule(&r)
		want = append(want, r)
	}
	probe := s.Opts.KeyPattern()
	var out []string
	for _, r := range list.Rules {
		if r.Rule.Action != acl.Allow || (r.Rule.Category != "protected" && r.Rule.Category != acl.AllCategories) {
			continue
		}
		if !acl.MatchPattern(r.Rule.Pattern, probe) {
			continue
		}
		if slices.ContainsFunc(want, func(w acl.Rule) bool { return r.Rule.Equal(w) }) {
			continue
		}
		out = append(out, fmt.Sprintf("%d: %s", r.Index, r.Text))
	}
	return out, nil
}

// guardedRuleStep is a rule for the real server binary in the mount,
// which only the guard may open: Check finds the rule by its text (the
// daemon fingerprinted the binary when it added the rule) instead of
// fingerprinting the binary here.
type guardedRuleStep struct{ admin.RuleStep }

func (g *guardedRuleStep) Check(ctx context.Context) (bool, string, error) {
	want, err := acl.ParseRule(g.Rule)
	if err != nil {
		return false, "", err
	}
	list, err := g.Conn.Client.ACLList(ctx)
	if err != nil {
		return false, "", err
	}
	for _, r := range list.Rules {
		if r.Rule.Equal(want) {
			return true, "", nil
		}
	}
	return false, "rule missing: " + g.Rule, nil
}

func (g *guardedRuleStep) Apply(ctx context.Context) error {
	_, err := g.Conn.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: g.Rule, Credential: g.Conn.Cred})
	return err
}

// withMove runs fn in a move session: the calling process opens the
// mount's plaintext without rules until fn returns.
func (s *Setup) withMove(ctx context.Context, fn func(mount string) error) error {
	sess, err := s.Conn.Client.BeginMove(ctx, daemon.MoveBeginRequest{Credential: s.Conn.Cred})
	if err != nil {
		return err
	}
	defer s.Conn.Client.EndMove(context.Background())
	return fn(sess.Mount)
}

func lookupIDs(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("the server user %q: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// KeyFileStep writes fresh random keys straight into @protected (MariaDB),
// or makes the keyring component's directory there (MySQL, whose server
// writes its own keys). The key never rests on disk in plaintext and is
// never shown.
type KeyFileStep struct{ Setup *Setup }

func (k *KeyFileStep) ID() string { return "engine:keys:" + k.Setup.Opts.KeyPath }
func (k *KeyFileStep) Describe() string {
	if k.Setup.Opts.Flavor == MySQL {
		return fmt.Sprintf("make the keyring directory %s in @protected, owned by %s", filepath.Dir(k.Setup.Opts.KeyInMount()), k.Setup.Opts.User)
	}
	return fmt.Sprintf("generate the engine keys into @protected (%s; never shown)", k.Setup.Opts.KeyInMount())
}

func (k *KeyFileStep) Check(context.Context) (bool, string, error) {
	p := k.Setup.Opts.KeyInMount()
	if k.Setup.Opts.Flavor == MySQL {
		p = filepath.Dir(p)
	}
	// A stat is not an open: the rules allow it.
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, "the engine keys are missing: " + p, nil
	}
	if err != nil {
		return false, "", err
	}
	if k.Setup.Opts.Flavor == MariaDB && !fi.Mode().IsRegular() {
		return false, p + " is not a regular file", nil
	}
	return true, "", nil
}

func (k *KeyFileStep) Apply(ctx context.Context) error {
	uid, gid, err := lookupIDs(k.Setup.Opts.User)
	if err != nil {
		return err
	}
	return k.Setup.withMove(ctx, func(mount string) error {
		rel := k.Setup.Opts.KeyPath
		dir := filepath.Join(mount, "protected", filepath.Dir(rel))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("failed to make %s: %w", dir, err)
		}
		if k.Setup.Opts.Flavor == MySQL {
			if err := os.Chown(dir, uid, gid); err != nil {
				return err
			}
			return os.Chmod(dir, 0o700)
		}
		keys, err := NewKeyFile()
		if err != nil {
			return err
		}
		defer keys.Wipe()
		b := keys.Marshal()
		defer clear(b)
		p := filepath.Join(mount, "protected", rel)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o400)
		if err != nil {
			return fmt.Errorf("failed to write the engine keys: %w", err)
		}
		_, werr := f.Write(b)
		if werr == nil {
			werr = f.Chown(uid, gid)
		}
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(p)
			return fmt.Errorf("failed to write the engine keys: %w", werr)
		}
		return nil
	})
}

// Undo removes the keys this run generated (a rollback before any server
// used them).
func (k *KeyFileStep) Undo(ctx context.Context) error {
	return k.Setup.withMove(ctx, func(mount string) error {
		p := filepath.Join(mount, "protected", k.Setup.Opts.KeyPath)
		if k.Setup.Opts.Flavor == MySQL {
			p = filepath.Dir(p)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
}

// GuardStep puts a phase of engine mode into the guard of a hardened
// MariaDB server: while engine mode is on (Encrypting, Decrypting) the
// key plugin is on the guard's plugin allow-list and required, and the
// phase's settings are pinned (a restart with encryption off, without the
// key plugin or with other keys is refused); Off removes all three. The
// guard's configuration is in @protected; it is changed in a move session
// (the master credential). Undo puts UndoPhase in.
type GuardStep struct {
	Setup            *Setup
	Phase, UndoPhase Phase
}

func (g *GuardStep) ID() string {
	return "engine:guard:" + g.Phase.String() + ":" + g.Setup.Hardened.GuardConfig
}

func (g *GuardStep) Describe() string {
	if g.Phase == Off {
		return fmt.Sprintf("the guard (%s): drop engine mode's pins and the key plugin %s", g.Setup.Hardened.GuardConfig, KeyPlugin)
	}
	return fmt.Sprintf("the guard (%s): require the key plugin %s and pin engine mode's settings (%s)", g.Setup.Hardened.GuardConfig, KeyPlugin, g.Phase)
}

// Check reads the engine's own record: the guard's configuration is open
// only to the guard and to move sessions.
func (g *GuardStep) Check(context.Context) (bool, string, error) {
	st, err := plan.LoadState(g.Setup.Opts.StatePath)
	if err != nil {
		return false, "", err
	}
	if st != nil && slices.Contains(st.Applied, g.ID()) {
		return true, "", nil
	}
	return false, "the guard does not pin engine mode's settings (" + g.Phase.String() + ")", nil
}

// SetGuardPhase puts phase p into a guard configuration.
func (o *Options) SetGuardPhase(pins *guard.Pins, p Phase) {
	pins.PluginLoad = slices.DeleteFunc(pins.PluginLoad, func(e string) bool { return e == KeyPlugin })
	pins.RequirePlugins = slices.DeleteFunc(pins.RequirePlugins, func(e string) bool { return e == KeyPlugin })
	pins.Values = nil
	if p == Off {
		return
	}
	pins.PluginLoad = append(pins.PluginLoad, KeyPlugin)
	pins.RequirePlugins = append(pins.RequirePlugins, KeyPlugin)
	for _, v := range o.GuardValues(p) {
		pins.Values = append(pins.Values, guard.ValuePin{Option: v.Name, Value: v.Value})
	}
}

func (g *GuardStep) edit(ctx context.Context, p Phase) error {
	return g.Setup.withMove(ctx, func(mount string) error {
		path := g.Setup.Hardened.GuardConfigInMount(mount)
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("failed to read the guard configuration: %w", err)
		}
		var c guard.Config
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("the guard configuration %s: %w", path, err)
		}
		if c.Pins == nil {
			return fmt.Errorf("the guard configuration %s has no pins: run 'mysecure harden mysqld --undo' and harden again", path)
		}
		g.Setup.Opts.SetGuardPhase(c.Pins, p)
		out, err := json.MarshalIndent(&c, "", "  ")
		if err != nil {
			return err
		}
		return writeAtomic(path, append(out, '\n'), 0o600)
	})
}

func (g *GuardStep) Apply(ctx context.Context) error { return g.edit(ctx, g.Phase) }
func (g *GuardStep) Undo(ctx context.Context) error  { return g.edit(ctx, g.UndoPhase) }

// CnfStep writes the server's option file for engine mode.
type CnfStep struct {
	Path    string
	Content string
}

func (c *CnfStep) ID() string { return "engine:cnf:" + c.Path }
func (c *CnfStep) Describe() string {
	return "write " + c.Path + ": the key plugin and encryption of tables, logs and temporary files"
}

func (c *CnfStep) Check(context.Context) (bool, string, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, "engine mode is off: " + c.Path + " is missing", nil
	}
	if err != nil {
		return false, "", err
	}
	if !strings.HasPrefix(string(b), Marker) {
		return false, "", fmt.Errorf("%s %w", c.Path, ErrForeignFile)
	}
	if string(b) != c.Content {
		return false, c.Path + " was changed since engine mode wrote it", nil
	}
	return true, "", nil
}

func (c *CnfStep) Apply(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return err
	}
	return writeAtomic(c.Path, []byte(c.Content), 0o644)
}

func (c *CnfStep) Undo(context.Context) error { return RemoveOwn(c.Path) }

// ManifestStep writes one of MySQL's JSON files for the keyring component
// (ManifestFiles). JSON has no comments: a file is engine mode's when its
// content is exactly what engine mode writes; any other file at that place
// is refused and left alone.
type ManifestStep struct{ File ManifestFile }

func (m *ManifestStep) ID() string { return "engine:manifest:" + m.File.Path }
func (m *ManifestStep) Describe() string {
	return "write " + m.File.Path + " (MySQL: " + strings.TrimSpace(m.File.Content) + ")"
}

func (m *ManifestStep) Check(context.Context) (bool, string, error) {
	b, err := os.ReadFile(m.File.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, m.File.Path + " is missing", nil
	}
	if err != nil {
		return false, "", err
	}
	if string(b) != m.File.Content {
		return false, "", fmt.Errorf("%s %w (merge it by hand: %s)", m.File.Path, ErrForeignFile, strings.TrimSpace(m.File.Content))
	}
	return true, "", nil
}

func (m *ManifestStep) Apply(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(m.File.Path), 0o755); err != nil {
		return err
	}
	return writeAtomic(m.File.Path, []byte(m.File.Content), 0o644)
}

// Undo removes the file when it is still what Apply wrote.
func (m *ManifestStep) Undo(context.Context) error {
	b, err := os.ReadFile(m.File.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(b) != m.File.Content {
		return fmt.Errorf("%s %w: left in place", m.File.Path, ErrForeignFile)
	}
	return os.Remove(m.File.Path)
}

// RemoveOwn removes a file engine mode wrote (it starts with Marker).
func RemoveOwn(p string) error {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(b), Marker) {
		return fmt.Errorf("%s %w: left in place", p, ErrForeignFile)
	}
	return os.Remove(p)
}

// writeAtomic replaces p (atomicfile.Write) and names it in an error.
func writeAtomic(p string, b []byte, mode os.FileMode) error {
	if err := atomicfile.Write(p, b, mode); err != nil {
		return fmt.Errorf("failed to write %s: %w", p, err)
	}
	return nil
}
