// Package hardening plans and undoes `mysecure harden mysqld`: it finds the
// server binary, its datadir and how it is started (systemd, mysqld_safe,
// mysqld_multi), and writes and removes the files that point those start
// paths at the guard wrapper (package hardening/guard). The moves into the
// encrypted mount and the access rules go through the daemon; Procedure
// runs the whole apply and undo and records every step in the state file
// that --undo reads, for the CLI and for the policy step (GuardStep).
// HostReset resets an account's password on a hardened server with the
// master credential (reset.go: the init-file procedure behind the small
// Server interface), and Login proves it by logging in.
//
// It never prints; the caller shows Plan.Steps. It must not import cobra
// or viper, nor the other modules (backup, ndb): what it needs of them
// comes in as an interface (Querier).
package hardening

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/hardening/guard"
	"github.com/mysecure/mysecure/internal/mycnf"
)

// Marker starts every file harden writes; undo removes only those.
const Marker = "# written by 'mysecure harden mysqld'; 'mysecure harden mysqld --undo' removes it"

// DefaultStatePath records what harden changed, for --undo.
const DefaultStatePath = "/etc/mysecure/harden-mysqld.json"

// StateFile is the state file a --state flag names: path, or
// DefaultStatePath when it is empty.
func StateFile(path string) string {
	if path == "" {
		return DefaultStatePath
	}
	return path
}

// Options locate what to harden. Empty fields are detected.
type Options struct {
	Binary      string // server binary (default: /usr/sbin/mariadbd, else /usr/sbin/mysqld)
	DataDir     string // default: from the option files, else /var/lib/mysql
	GuardBinary string // the mysqld-guard program to install
	Wrapper     string // where to install it (default: BINARY-guard, next to the binary)
	GuardConfig string // default guard.DefaultConfigPath
	StatePath   string // default DefaultStatePath
	UnitDirs    []string
	DropInDir   string   // default /etc/systemd/system
	CnfDir      string   // default /etc/mysql/mariadb.conf.d (else conf.d)
	OptionFile  string   // default /etc/mysql/my.cnf
	InitAllow   []string // init files the guard lets through
	Mount       string   // the mount point
	AuditLog    string
	// BackupTool, when set, is the physical backup tool (mariadb-backup,
	// xtrabackup) that keeps a rule to read the datadir (see
	// backuptool.go); "" adds none.
	BackupTool string
}

// DropIn is a systemd drop-in that starts the wrapper.
type DropIn struct {
	Unit    string `json:"unit"`
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Plan is what harden will do (or did: it is saved as the state).
type Plan struct {
	Binary         string   `json:"binary"`
	MountBinary    string   `json:"mount_binary"`
	Wrapper        string   `json:"wrapper"`
	GuardBinary    string   `json:"guard_binary"`
	GuardConfig    string   `json:"guard_config"`
	DataDir        string   `json:"datadir"`
	EncryptDataDir bool     `json:"encrypt_datadir"`
	Rules          []string `json:"rules"`
	CnfFile        string   `json:"cnf_file,omitempty"`
	CnfContent     string   `json:"cnf_content,omitempty"`
	DropIns        []DropIn `json:"dropins,omitempty"`
	StartedBy      []string `json:"started_by"`
	Version        string   `json:"version"`
	StatePath      string   `json:"-"`
	Guard          guard.Config
	// Done lists the steps applied, in order (for --undo and a resumed
	// run): StepName values, a frozen part of the state format.
	Done    []string  `json:"done"`
	Created time.Time `json:"created"`

	// BackupTool is the backup tool's resolved path, BackupRule the rule
	// that lets it read the datadir: in Rules when harden adds it (and
	// --undo removes it), else BackupRuleKept names the existing rule
	// harden left in place.
	BackupTool     string `json:"backup_tool,omitempty"`
	BackupRule     string `json:"backup_rule,omitempty"`
	BackupRuleKept string `json:"backup_rule_kept,omitempty"`
}

// Steps describes the plan for --dry-run.
func (p *Plan) Steps() []string {
	s := []string{
		fmt.Sprintf("install the guard %s as %s (config %s)", p.GuardBinary, p.Wrapper, p.GuardConfig),
		fmt.Sprintf("encrypt the server binary %s into @protected (%s)", p.Binary, p.MountBinary),
		fmt.Sprintf("encrypt the guard configuration %s into @protected (only the guard reads it, nobody may change it)", p.GuardConfig),
	}
	if p.EncryptDataDir {
		s = append(s, fmt.Sprintf("encrypt the datadir %s into @mysql", p.DataDir))
	} else {
		s = append(s, fmt.Sprintf("the datadir %s is in @mysql already", p.DataDir))
	}
	for _, r := range p.Rules {
		s = append(s, "add rule: "+r)
	}
	s = append(s, p.backupToolStep())
	if p.CnfFile != "" {
		s = append(s, fmt.Sprintf("write %s: mysqld_safe and mysqld_multi start %s", p.CnfFile, p.Wrapper))
	}
	for _, d := range p.DropIns {
		s = append(s, fmt.Sprintf("write the systemd drop-in %s: %s starts %s", d.Path, d.Unit, p.Wrapper))
	}
	return s
}

// ErrHardened: a state file exists.
var ErrHardened = errors.New("already hardened")

// Detect builds the plan.
func Detect(o Options) (*Plan, error) {
	o.StatePath = StateFile(o.StatePath)
	if _, err := os.Stat(o.StatePath); err == nil {
		return nil, fmt.Errorf("%w: %s exists (undo it first with --undo)", ErrHardened, o.StatePath)
	}
	bin := o.Binary
	if bin == "" {
		for _, c := range []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"} {
			if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
				bin = c
				break
			}
		}
		if bin == "" {
			return nil, errors.New("no server binary found in /usr/sbin (mariadbd, mysqld): pass --binary")
		}
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	// Encrypt the file itself, not a symlink to it.
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		if o.Mount != "" && strings.HasPrefix(real, o.Mount+"/") {
			return nil, fmt.Errorf("%w: %s is in the mount already", ErrHardened, bin)
		}
		bin = real
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%s is not an executable file", bin)
	}
	if o.Mount == "" {
		return nil, errors.New("the mount point is not configured")
	}
	// The guard checks that its configuration, the real binary and the
	// datadir are on the mount, reached without symlinks.
	mount, err := filepath.EvalSymlinks(o.Mount)
	if err != nil {
		return nil, fmt.Errorf("the mount %s: %w", o.Mount, err)
	}
	p := &Plan{Binary: bin, StatePath: o.StatePath, Created: time.Now().UTC()}
	p.MountBinary = filepath.Join(mount, "protected", bin)
	p.Wrapper = o.Wrapper
	if p.Wrapper == "" {
		p.Wrapper = bin + "-guard"
	}
	p.GuardBinary = o.GuardBinary
	if p.GuardBinary == "" {
		return nil, errors.New("the mysqld-guard program was not found: build it (make build) or pass --guard-binary")
	}
	p.GuardConfig = o.GuardConfig
	if p.GuardConfig == "" {
		p.GuardConfig = guard.DefaultConfigPath
	}
	if p.GuardConfig, err = filepath.Abs(p.GuardConfig); err != nil {
		return nil, err
	}
	p.Version = serverVersion(bin)
	p.DataDir = o.DataDir
	if p.DataDir == "" {
		p.DataDir = detectDataDir(o.OptionFile)
	}
	if p.DataDir, err = filepath.Abs(p.DataDir); err != nil {
		return nil, err
	}
	realDD, err := filepath.EvalSymlinks(p.DataDir)
	if err != nil {
		return nil, fmt.Errorf("datadir %s: %w", p.DataDir, err)
	}
	p.EncryptDataDir = !strings.HasPrefix(realDD, filepath.Join(mount, "mysql")+"/")
	mountDD := filepath.Join(mount, "mysql", p.DataDir)
	if !p.EncryptDataDir {
		mountDD = realDD
	}
	rel := strings.TrimPrefix(bin, "/")
	p.Rules = []string{
		fmt.Sprintf("ALLOW @protected %s %s", rel, p.Wrapper),
		fmt.Sprintf("ALLOW @protected %s %s", strings.TrimPrefix(p.GuardConfig, "/"), p.Wrapper),
		// Bound to the datadir: a symlink from elsewhere into @mysql (another
		// server's datadir, a file moved there by hand) gains nothing.
		fmt.Sprintf("ALLOW @mysql %s/* %s", strings.TrimPrefix(mountDD, filepath.Join(mount, "mysql")+"/"), p.MountBinary),
	}
	if err := p.addBackupRule(o.BackupTool, mountDD, mount); err != nil {
		return nil, err
	}
	opts := serverOptions(o.OptionFile)
	p.Guard = guard.Config{RealBinary: p.MountBinary, OriginalBinary: bin, AuditLog: o.AuditLog, InitFileAllow: o.InitAllow, Syslog: true, Version: p.Version,
		Mount: mount, Pins: pins(p.DataDir, mountDD, opts, compiledDefaults(bin))}

	// How is it started?
	cnfDir := o.CnfDir
	if cnfDir == "" {
		for _, d := range []string{"/etc/mysql/mariadb.conf.d", "/etc/mysql/conf.d"} {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				cnfDir = d
				break
			}
		}
	}
	if cnfDir != "" {
		p.CnfFile = filepath.Join(cnfDir, "99-mysecure-guard.cnf")
		p.CnfContent = fmt.Sprintf("%s\n# mysqld_safe looks for the server in its ledir (the binary's directory) by name.\n[mysqld_safe]\nmysqld = %s\n\n[mysqld_multi]\nmysqld = %s\n",
			Marker, filepath.Base(p.Wrapper), p.Wrapper)
		p.StartedBy = append(p.StartedBy, "mysqld_safe", "mysqld_multi")
	}
	unitDirs := o.UnitDirs
	if unitDirs == nil {
		unitDirs = []string{"/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"}
	}
	dropDir := o.DropInDir
	if dropDir == "" {
		dropDir = "/etc/systemd/system"
	}
	names := []string{bin, o.Binary}
	for _, c := range []string{"/usr/sbin/mysqld", "/usr/sbin/mariadbd"} {
		if r, err := filepath.EvalSymlinks(c); err == nil && r == bin {
			names = append(names, c)
		}
	}
	drops, err := dropIns(unitDirs, dropDir, names, p.Wrapper)
	if err != nil {
		return nil, err
	}
	p.DropIns = drops
	for _, d := range drops {
		p.StartedBy = append(p.StartedBy, "systemd "+d.Unit)
	}
	return p, nil
}

func serverVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(`Ver (\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func detectDataDir(optionFile string) string {
	if optionFile == "" {
		optionFile = "/etc/mysql/my.cnf"
	}
	dd := "/var/lib/mysql"
	if opts, err := mycnf.Load(optionFile); err == nil {
		for _, o := range mycnf.Select(opts, "mysqld", "server", "mariadb", "mariadbd") {
			if o.Canonical() == "datadir" && o.Value != "" {
				dd = o.Value
			}
		}
	}
	return dd
}

// dropIns finds the units whose ExecStart runs one of the binaries and
// returns drop-ins that run the wrapper instead.
func dropIns(unitDirs []string, dropDir string, binaries []string, wrapper string) ([]DropIn, error) {
	seen := map[string]bool{}
	var out []DropIn
	for _, dir := range unitDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(name, ".service") || seen[name] {
				continue
			}
			path := filepath.Join(dir, name)
			if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				continue // an alias: the drop-in goes to the real unit
			}
			lines, err := execStarts(path)
			if err != nil || len(lines) == 0 {
				continue
			}
			var fixed []string
			changed := false
			for _, l := range lines {
				nl := l
				for _, b := range binaries {
					if b == "" {
						continue
					}
					re := regexp.MustCompile(regexp.QuoteMeta(b) + `\b`)
					if re.MatchString(nl) {
						nl = re.ReplaceAllLiteralString(nl, wrapper)
						changed = true
						break
					}
				}
				fixed = append(fixed, nl)
			}
			if !changed {
				continue
			}
			seen[name] = true
			var b strings.Builder
			fmt.Fprintf(&b, "%s\n[Service]\nExecStart=\n", Marker)
			for _, l := range fixed {
				fmt.Fprintf(&b, "ExecStart=%s\n", l)
			}
			out = append(out, DropIn{Unit: name, Path: filepath.Join(dropDir, name+".d", "mysecure-guard.conf"), Content: b.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	return out, nil
}

// execStarts returns a unit's ExecStart= values, continuation lines
// joined.
func execStarts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur strings.Builder
	in := false
	for sc.Scan() {
		l := sc.Text()
		if !in {
			t := strings.TrimSpace(l)
			v, ok := strings.CutPrefix(t, "ExecStart=")
			if !ok || v == "" {
				continue
			}
			cur.Reset()
			l = v
			in = true
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		in = false
	}
	return out, sc.Err()
}

// Save writes the state (the plan with its done steps) atomically.
func (p *Plan) Save() error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.StatePath), 0o700); err != nil {
		return err
	}
	tmp := p.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.StatePath)
}

// LoadState reads the state of a hardened setup.
func LoadState(path string) (*Plan, error) {
	path = StateFile(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("harden state %s: %w", path, err)
	}
	p.StatePath = path
	return &p, nil
}

// Did reports whether step was applied.
func (p *Plan) Did(step StepName) bool {
	for _, d := range p.Done {
		if d == string(step) {
			return true
		}
	}
	return false
}

// Mark records step as applied and saves the state.
func (p *Plan) Mark(step StepName) error {
	if !p.Did(step) {
		p.Done = append(p.Done, string(step))
	}
	return p.Save()
}

// Unmark records step as undone and saves the state.
func (p *Plan) Unmark(step StepName) error {
	for i, d := range p.Done {
		if d == string(step) {
			p.Done = append(p.Done[:i], p.Done[i+1:]...)
			break
		}
	}
	return p.Save()
}

// WriteFile writes a file harden owns (refusing to replace a file it did
// not write).
func WriteFile(path, content string, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && !strings.HasPrefix(string(old), Marker) {
		return fmt.Errorf("%w: %s exists and was not written by mysecure", os.ErrExist, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), mode)
}

// RemoveFile removes a file harden wrote (and nothing else).
func RemoveFile(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(b), Marker) {
		return fmt.Errorf("%s was not written by mysecure: left alone", path)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	os.Remove(filepath.Dir(path)) // an empty .d directory
	return nil
}

// InstallGuard copies the guard program to the wrapper path and writes
// its configuration.
func (p *Plan) InstallGuard() error {
	if _, err := os.Lstat(p.Wrapper); err == nil {
		return fmt.Errorf("%w: %s exists", os.ErrExist, p.Wrapper)
	}
	b, err := os.ReadFile(p.GuardBinary)
	if err != nil {
		return fmt.Errorf("guard program: %w", err)
	}
	// The configuration's path goes into the program itself (see
	// guard.ConfigPath): the rules then pin it with the fingerprint.
	if b, err = guard.PatchConfigPath(b, p.GuardConfigInMount(p.Guard.Mount)); err != nil {
		return fmt.Errorf("guard program %s: %w", p.GuardBinary, err)
	}
	tmp := p.Wrapper + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.Wrapper); err != nil {
		os.Remove(tmp)
		return err
	}
	cb, err := json.MarshalIndent(p.Guard, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.GuardConfig), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p.GuardConfig, cb, 0o644)
}

// GuardConfigInMount is where the configuration lives once encrypted.
func (p *Plan) GuardConfigInMount(mount string) string {
	return filepath.Join(mount, "protected", p.GuardConfig)
}

// RemoveGuard removes the wrapper and its configuration.
func (p *Plan) RemoveGuard() error {
	for _, f := range []string{p.Wrapper, p.GuardConfig} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// PlainServerRule is the rule an unhardened server needs when its datadir
// was in @mysql before hardening and stays there after --undo: the
// original binary, bound to the datadir and to the datadir owner's uid
// (the server's user).
func PlainServerRule(p *Plan) (string, error) {
	if len(p.Rules) == 0 {
		return "", errors.New("the harden state has no rules")
	}
	f := strings.Fields(p.Rules[len(p.Rules)-1])
	if len(f) < 4 || f[1] != "@mysql" {
		return "", fmt.Errorf("the harden state's last rule is not the datadir's: %q", p.Rules[len(p.Rules)-1])
	}
	r := fmt.Sprintf("ALLOW @mysql %s %s", f[2], p.Binary)
	var st syscall.Stat_t
	if err := syscall.Stat(p.DataDir, &st); err == nil {
		r += fmt.Sprintf(" --user=%d", st.Uid)
	}
	return r, nil
}
