package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/encfs/acl"
)

// Warning is a weakness status reports: not an error, something an
// administrator should look at.
type Warning struct {
	Kind    string `json:"kind"` // "rule-without-user"
	Rule    int    `json:"rule,omitempty"`
	Program string `json:"program,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// ruleWarnings lists ALLOW rules without --user whose programs a local
// non-root user can run: that user can start the program with code of
// their choosing loaded into it (LD_PRELOAD, ptrace of their own process)
// and read whatever the rule allows. Programs on the mount itself are not
// examined (the daemon does not touch its own mount).
func (d *Daemon) ruleWarnings() []Warning {
	out := []Warning{}
	rs := d.engine.Rules()
	if rs == nil {
		return out
	}
	for i, r := range rs.Rules {
		if r.Action != acl.Allow || len(r.Users) > 0 {
			continue
		}
		progs := []acl.Program{r.Exe}
		if r.Shell != nil {
			progs = append(progs, *r.Shell)
		}
		progs = append(progs, r.Children...)
		for _, p := range progs {
			if d.onMount(p.Path) {
				continue
			}
			why := userExecutable(p.Path)
			if why == "" {
				continue
			}
			out = append(out, Warning{
				Kind: "rule-without-user", Rule: i + 1, Program: p.Path,
				Message: fmt.Sprintf("rule %d (%s) has no --user and %s can be run by local non-root users (%s): they can load their own code into it (LD_PRELOAD) and read what the rule allows",
					i+1, r.String(), p.Path, why),
				Hint: "limit the rule to the account the program runs as: add --user=NAME (for a server, --user=mysql)",
			})
		}
	}
	return out
}

func (d *Daemon) onMount(p string) bool {
	m := filepath.Clean(d.cfg.Mount)
	return p == m || strings.HasPrefix(p, m+"/")
}

// userExecutable says why a user other than root can execute path ("" if
// none can, or it cannot be examined): others may execute it, or its
// group or owner is not root and may.
func userExecutable(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	mode := st.Mode & 0o7777
	switch {
	case mode&0o001 != 0:
		return fmt.Sprintf("mode %04o", mode)
	case mode&0o010 != 0 && st.Gid != 0:
		return fmt.Sprintf("mode %04o, group %d", mode, st.Gid)
	case mode&0o100 != 0 && st.Uid != 0:
		return fmt.Sprintf("mode %04o, owner %d", mode, st.Uid)
	}
	return ""
}
