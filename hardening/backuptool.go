package hardening

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mysecure/mysecure/encfs/acl"
)

// A hardened server's datadir is open to the real binary alone; a
// physical backup tool (mariadb-backup, xtrabackup) must read it too. The
// tool gets its own rule, by its resolved path and fingerprint, bound to
// the datadir and to root (the daemon and a local `mysecure backup` run
// it as root):
//
//	ALLOW @mysql var/lib/mysql/* /usr/bin/mariadb-backup --user=0
//
// The trade-off: root can run the tool by hand and copy the datadir's
// plaintext (mariadb-backup --backup --target-dir=/tmp/x). The rule
// keeps it as narrow as it can be: no other program, no other uid, no
// other part of @mysql. Every other rule that opens @mysql still makes
// harden refuse: it could let a copy of the server read the datadir
// around the guard.

// backupUser is the uid the backup tool rule admits (root), as a number:
// the form 'acl list' shows.
const backupUser = "0"

// addBackupRule adds the backup tool's rule to the plan (tool "" adds
// none).
func (p *Plan) addBackupRule(tool, mountDD, mount string) error {
	if tool == "" {
		return nil
	}
	real, err := filepath.EvalSymlinks(tool)
	if err != nil {
		return fmt.Errorf("the backup tool %s: %w (pass --allow-backup-tool=none to add no rule for it)", tool, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return err
	}
	if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("the backup tool %s is not an executable file (pass --allow-backup-tool=none to add no rule for it)", real)
	}
	p.BackupTool = real
	p.BackupRule = fmt.Sprintf("ALLOW @mysql %s/* %s --user=%s", strings.TrimPrefix(mountDD, filepath.Join(mount, "mysql")+"/"), real, backupUser)
	p.Rules = append(p.Rules, p.BackupRule)
	return nil
}

// IsBackupToolRule reports whether r is a rule for the plan's backup
// tool alone (its path, no interpreter, no children) on @mysql: harden
// keeps such a rule instead of refusing, and does not add its own.
func (p *Plan) IsBackupToolRule(r acl.Rule) bool {
	if p.BackupTool == "" || r.Action != acl.Allow || r.Category != "mysql" || r.Shell != nil || len(r.Children) > 0 {
		return false
	}
	exe := r.Exe.Path
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return exe == p.BackupTool
}

// KeepBackupRule records that the existing rule text allows the backup
// tool: harden leaves it in place (and --undo too) and adds none.
func (p *Plan) KeepBackupRule(text string) {
	p.BackupRuleKept = text
	if i := slices.Index(p.Rules, p.BackupRule); i >= 0 {
		p.Rules = slices.Delete(p.Rules, i, i+1)
	}
}

func (p *Plan) backupToolStep() string {
	switch {
	case p.BackupRuleKept != "":
		return fmt.Sprintf("keep rule: %s (the backup tool %s; --undo leaves it)", p.BackupRuleKept, p.BackupTool)
	case p.BackupTool != "":
		return fmt.Sprintf("the rule for %s lets physical backups (mysecure backup --type physical, run as root) read the datadir; --allow-backup-tool=none leaves it out", p.BackupTool)
	}
	return "no rule for a physical backup tool: 'mysecure backup --type physical' will be denied the datadir"
}

// ResolveBackupTool resolves what the user asked for the backup tool's
// rule (--allow-backup-tool): "auto" (and yes, true, on, 1) is
// configured when set, else the first of mariadb-backup, mariabackup and
// xtrabackup on PATH ("" when none is installed); "none" (and no,
// false, off, 0, "") is ""; another name is looked up on PATH, and an
// absolute path is taken as it is. The error is the failed lookup of a
// name.
func ResolveBackupTool(want, configured string) (string, error) {
	switch strings.ToLower(want) {
	case "none", "no", "false", "off", "0", "":
		return "", nil
	case "auto", "yes", "true", "on", "1":
		names := []string{"mariadb-backup", "mariabackup", "xtrabackup"}
		if configured != "" {
			names = []string{configured}
		}
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return filepath.Abs(p)
			}
		}
		return "", nil
	}
	if filepath.IsAbs(want) {
		return want, nil
	}
	p, err := exec.LookPath(want)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}
