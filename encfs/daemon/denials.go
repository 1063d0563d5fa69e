package daemon

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mysecure/mysecure/encfs/acl"

	"github.com/mysecure/mysecure/internal/procfs"
)

// The daemon remembers its most recent denials in memory (the audit log
// has all of them), so that a tool that failed can be told exactly which
// open the rules refused it and which rule would allow it: `status` shows
// them grouped by program, and a backup job attaches those of its tool's
// process group to its error.

// denialRingSize bounds the memory the ring uses whatever the rate of
// denials.
const denialRingSize = 1024

// Denial is one open the rules denied (or would have denied, when not
// enforcing).
type Denial struct {
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"` // "deny" or "would-deny"
	Pid      int       `json:"pid"`      // the process (thread group), not the thread
	Pgid     int       `json:"pgid,omitempty"`
	Uid      uint32    `json:"uid"`
	Program  string    `json:"program,omitempty"` // the executable's resolved path; "" if unidentified
	Category string    `json:"category"`
	Path     string    `json:"path"` // relative to the category
	Reason   string    `json:"reason"`
}

// DenialGroup is the denials of one program in one category.
type DenialGroup struct {
	Program  string    `json:"program"`
	Category string    `json:"category"`
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Uids     []uint32  `json:"uids"`
	// Files are the most recent distinct files (at most 5), as paths in
	// the mount.
	Files  []string `json:"files"`
	Reason string   `json:"reason"` // the latest denial's
	// Rule is the narrowest rule that would allow all of them: the
	// pattern of an existing rule of the category that covers every file
	// (a server's datadir rule), else their common directory; --user
	// with the uids seen. Empty when a rule would not help (the program
	// was not identified, or its fingerprint changed: 'acl update').
	Rule string `json:"rule,omitempty"`
	Hint string `json:"hint"`
}

// denialRing is a bounded ring of recent denials.
type denialRing struct {
	mu   sync.Mutex
	buf  []Denial
	next int
	full bool
}

func (r *denialRing) add(d Denial) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		r.buf = make([]Denial, denialRingSize)
	}
	r.buf[r.next] = d
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// list returns the denials, oldest first, that keep returns true for.
func (r *denialRing) list(keep func(*Denial) bool) []Denial {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Denial{}
	n := r.next
	start := 0
	if r.full {
		n = len(r.buf)
		start = r.next
	}
	for i := 0; i < n; i++ {
		d := &r.buf[(start+i)%max(len(r.buf), 1)]
		if keep(d) {
			out = append(out, *d)
		}
	}
	return out
}

// DenialQuery selects denials: since a time, of one process group (a
// tool started in its own group, and its children), at most Limit (the
// newest).
type DenialQuery struct {
	Since time.Time
	Pgid  int
	Limit int
}

// Denials returns the recent denials that q selects, oldest first.
func (d *Daemon) Denials(q DenialQuery) []Denial {
	out := d.denied.list(func(x *Denial) bool {
		return !x.Time.Before(q.Since) && (q.Pgid == 0 || x.Pgid == q.Pgid)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out
}

// DenialGroups groups denials by program and category, with the rule
// that would allow each group.
func (d *Daemon) DenialGroups(ds []Denial) []DenialGroup {
	var rules []acl.Rule
	if rs := d.engine.Rules(); rs != nil {
		rules = rs.Rules
	}
	return GroupDenials(ds, d.cfg.Mount, rules)
}

// recordDenial keeps a denial in the ring; rec is its audit record.
func (d *Daemon) recordDenial(tid int, rec AuditRecord) {
	pid := tid
	if p, err := tgid(tid); err == nil {
		pid = p
	}
	d.denied.add(Denial{Time: rec.Time, Decision: rec.Decision, Pid: pid, Pgid: procPgid(tid), Uid: rec.Uid,
		Program: rec.Exe, Category: rec.Category, Path: strings.TrimPrefix(strings.TrimPrefix(rec.File, path.Join(d.cfg.Mount, rec.Category)), "/"),
		Reason: rec.Reason})
}

// procPgid is the process group of pid (field 5 of /proc/PID/stat), 0
// when it cannot be read.
func procPgid(pid int) int {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.Pgid
}

// GroupDenials groups ds (oldest first) by program and category, newest
// group first, and suggests for each the narrowest rule that allows it:
// the pattern of an ALLOW rule of rules for the same category that
// matches every file (the server's rule bound to its datadir), else the
// files' common directory.
func GroupDenials(ds []Denial, mount string, rules []acl.Rule) []DenialGroup {
	type key struct{ prog, cat string }
	idx := map[key]int{}
	var groups []DenialGroup
	paths := map[int][]string{}
	for _, x := range ds {
		k := key{x.Program, x.Category}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, DenialGroup{Program: x.Program, Category: x.Category, First: x.Time})
		}
		g := &groups[i]
		g.Count++
		g.Last, g.Reason = x.Time, x.Reason
		if !slices.Contains(g.Uids, x.Uid) {
			g.Uids = append(g.Uids, x.Uid)
		}
		if !slices.Contains(paths[i], x.Path) {
			paths[i] = append(paths[i], x.Path)
		}
	}
	for i := range groups {
		g := &groups[i]
		ps := paths[i]
		for j := len(ps) - 1; j >= 0 && len(g.Files) < 5; j-- {
			g.Files = append(g.Files, path.Join(mount, g.Category, ps[j]))
		}
		slices.Sort(g.Uids)
		g.Rule, g.Hint = suggestRule(g, ps, rules)
	}
	sort.SliceStable(groups, func(a, b int) bool { return groups[a].Last.After(groups[b].Last) })
	return groups
}

// suggestRule returns the rule that would allow a group, and a hint for
// the user.
func suggestRule(g *DenialGroup, paths []string, rules []acl.Rule) (string, string) {
	switch {
	case g.Program == "":
		return "", "the program could not be identified (it exited, or /proc was not readable); see the audit log"
	case strings.Contains(g.Reason, "fingerprint"):
		return "", "the program changed since its rule was added: if the change is yours, 'mysecure acl update'"
	case strings.Contains(g.Reason, "denied by rule"):
		return "", "a DENY rule refuses it: 'mysecure acl list'"
	}
	pattern := ""
	for _, r := range rules {
		if r.Action != acl.Allow || r.Category != g.Category || r.Pattern == "*" {
			continue
		}
		all := true
		for _, p := range paths {
			if !acl.MatchPattern(r.Pattern, p) {
				all = false
				break
			}
		}
		if all && len(r.Pattern) > len(pattern) {
			pattern = r.Pattern
		}
	}
	if pattern == "" {
		pattern = "*"
		if dir := commonDir(paths); dir != "" {
			pattern = dir + "/*"
		}
	}
	rule := fmt.Sprintf("ALLOW @%s %s %s", g.Category, pattern, g.Program)
	if len(g.Uids) > 0 {
		// As uids: the form 'acl list' shows the rule in.
		var us []string
		for _, u := range g.Uids {
			us = append(us, strconv.Itoa(int(u)))
		}
		rule += " --user=" + strings.Join(us, ",")
	}
	return rule, fmt.Sprintf("if %s should read these files: mysecure acl add '%s'", g.Program, rule)
}

// commonDir is the longest directory that holds every path ("" for the
// category's top).
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	dir := path.Dir(paths[0])
	for _, p := range paths[1:] {
		for dir != "." && !strings.HasPrefix(p, dir+"/") {
			dir = path.Dir(dir)
		}
	}
	if dir == "." || dir == "/" {
		return ""
	}
	return dir
}

// ExplainDenials says what the groups were denied, for an error message:
// "PROG opening FILES" per group ("an unidentified process" when the
// program is unknown), and the groups' distinct hints in order.
func ExplainDenials(gs []DenialGroup) (seen, hints []string) {
	for _, d := range gs {
		prog := d.Program
		if prog == "" {
			prog = "an unidentified process"
		}
		seen = append(seen, prog+" opening "+strings.Join(d.Files, ", "))
		if d.Hint != "" && !slices.Contains(hints, d.Hint) {
			hints = append(hints, d.Hint)
		}
	}
	return seen, hints
}
