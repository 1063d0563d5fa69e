package acl

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Request asks whether a process may open a file of a category.
type Request struct {
	Pid      int    // the caller, from the FUSE request
	Uid      uint32 // the caller's uid, from the FUSE request; what --user rules check
	Category string // without '@'
	Path     string // relative to the category, no leading slash
}

// Decision is the answer to a Request, with what the audit log needs.
type Decision struct {
	Allowed bool
	// Rule is the rule that allowed or denied; for a default deny, the
	// closest rule for that category if any ("the rule that would have
	// matched"). It is a copy: changing it changes nothing.
	Rule *Rule
	// Reason is short, for the log: "allowed by rule 3", "no rule allows
	// /usr/bin/cat", "fingerprint mismatch for /usr/bin/mysqldump (binary
	// changed; run 'mysecure acl update')", or the DenyAll reason.
	Reason string
	// Process is the identified caller; nil if identification failed.
	Process *Process
}

// Engine decides requests against the current rules. It is safe for
// concurrent use; SetRules and DenyAll swap the state atomically, so a
// decision sees either the old rules or the new ones, never a mix.
//
// Semantics: a DENY rule that matches wins over any ALLOW rule; with no
// matching rule the request is denied. A rule matches when its category is
// the request's (or '*'), its pattern matches the path (MatchPattern), its
// users are empty or hold the request's uid, and the process is the rule's
// program:
//
//   - plain rule: the executable has the rule's path and fingerprint;
//   - --shell rule: the executable is the interpreter (path and
//     fingerprint) and the script it runs (Process.LoadScript) is the
//     rule's program (path and fingerprint);
//   - --children: a process whose executable is one of the children (path
//     and fingerprint) also matches when its parent process matches the
//     rule's program as above (the interpreter running the script, or the
//     program itself for a rule without --shell).
//
// For ALLOW rules both path and fingerprint must match, and a program
// without a fingerprint never matches. DENY rules are matched more widely,
// since denying more is the safe side: a program matches a DENY rule's
// program when either the path or the fingerprint is the same (so a
// modified or copied binary stays denied), and a process that is one of a
// DENY rule's children is denied when its parent cannot be identified.
type Engine struct {
	id    *Identifier
	state atomic.Pointer[engineState]
}

type engineState struct {
	rules   *RuleSet // private deep copy, never modified
	denyAll bool
	reason  string
}

// NewEngine returns an Engine with no rules (it denies everything) that
// identifies callers with id (a default Identifier when id is nil).
func NewEngine(id *Identifier) *Engine {
	if id == nil {
		id = NewIdentifier(IdentifierOptions{})
	}
	e := &Engine{id: id}
	e.state.Store(&engineState{rules: &RuleSet{}})
	return e
}

// Identifier returns the Identifier the engine uses.
func (e *Engine) Identifier() *Identifier { return e.id }

// SetRules replaces the rules with a copy of rs (nil means none) and
// clears a DenyAll.
func (e *Engine) SetRules(rs *RuleSet) {
	c := rs.Clone()
	if c == nil {
		c = &RuleSet{}
	}
	e.state.Store(&engineState{rules: c})
}

// DenyAll makes every Decide deny with reason, for example after the rule
// file failed its MAC check, until the next SetRules. The rules are kept
// for Rules.
func (e *Engine) DenyAll(reason string) {
	if reason == "" {
		reason = "all access denied"
	}
	old := e.state.Load()
	e.state.Store(&engineState{rules: old.rules, denyAll: true, reason: reason})
}

// Rules returns a copy of the current rules.
func (e *Engine) Rules() *RuleSet { return e.state.Load().rules.Clone() }

// Decide answers req. It never fails: any problem (unknown process, bad
// request, no rules, deny-all) is a deny with the reason.
func (e *Engine) Decide(req Request) Decision {
	st := e.state.Load()
	if st.denyAll {
		p, _ := e.id.Identify(req.Pid) // only for the log
		return Decision{Reason: st.reason, Process: p}
	}
	if err := checkRequest(req); err != nil {
		return Decision{Reason: err.Error()}
	}
	rules := st.rules.Rules
	p, err := e.id.Identify(req.Pid)
	if err != nil {
		return Decision{Rule: firstRule(rules, req), Reason: "caller not identified: " + err.Error()}
	}
	if len(rules) == 0 {
		return Decision{Reason: "no rules", Process: p}
	}
	d := decision{e: e, req: req, p: p}
	for i := range rules {
		r := &rules[i]
		if r.Action == Deny && d.applies(r) && d.denyMatches(r) {
			return Decision{Rule: ruleCopy(r), Reason: "denied by rule " + strconv.Itoa(i+1), Process: p}
		}
	}
	for i := range rules {
		r := &rules[i]
		if r.Action == Allow && d.applies(r) && d.allowMatches(r).level == matchYes {
			return Decision{Allowed: true, Rule: ruleCopy(r), Reason: "allowed by rule " + strconv.Itoa(i+1), Process: p}
		}
	}
	i, reason := d.closest(rules)
	var rule *Rule
	if i >= 0 {
		rule = ruleCopy(&rules[i])
	}
	return Decision{Rule: rule, Reason: reason, Process: p}
}

func checkRequest(req Request) error {
	switch {
	case req.Category == AllCategories || !ValidCategory(req.Category):
		return fmt.Errorf("bad request: invalid category %q", req.Category)
	case strings.HasPrefix(req.Path, "/"):
		return fmt.Errorf("bad request: path %q is not relative to the category", req.Path)
	case slices.Contains(strings.Split(req.Path, "/"), ".."):
		return fmt.Errorf("bad request: path %q has a '..' component", req.Path)
	}
	return nil
}

func ruleCopy(r *Rule) *Rule {
	c := r.clone()
	return &c
}

// firstRule is the rule to log when the caller could not be identified:
// the first of the category whose pattern matches, else the first of the
// category.
func firstRule(rules []Rule, req Request) *Rule {
	best := -1
	for i := range rules {
		r := &rules[i]
		if !categoryMatches(r, req.Category) {
			continue
		}
		if MatchPattern(r.Pattern, req.Path) {
			return ruleCopy(r)
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	return ruleCopy(&rules[best])
}

func categoryMatches(r *Rule, cat string) bool {
	return r.Category == AllCategories || r.Category == cat
}

func userMatches(r *Rule, uid uint32) bool {
	return len(r.Users) == 0 || slices.Contains(r.Users, uid)
}

// decision holds what one Decide learns lazily: the parent process.
type decision struct {
	e   *Engine
	req Request
	p   *Process

	parentDone bool
	parent     *Process
	parentErr  error
}

func (d *decision) getParent() (*Process, error) {
	if !d.parentDone {
		d.parentDone = true
		d.parent, d.parentErr = d.e.id.Parent(d.p)
	}
	return d.parent, d.parentErr
}

// applies reports whether r is about this file and this uid.
func (d *decision) applies(r *Rule) bool {
	return categoryMatches(r, d.req.Category) && MatchPattern(r.Pattern, d.req.Path) && userMatches(r, d.req.Uid)
}

// sameProgramLoose: path or fingerprint equal (DENY rules).
func sameProgramLoose(rule, actual Program) bool {
	return actual.Path == rule.Path || (rule.SHA256 != "" && actual.SHA256 == rule.SHA256)
}

// denyMatches reports whether the process is r's program, loosely.
func (d *decision) denyMatches(r *Rule) bool {
	if d.mainDeny(r, d.p) {
		return true
	}
	for _, c := range r.Children {
		if sameProgramLoose(c, d.p.Exe) {
			parent, err := d.getParent()
			// Fail closed: a child whose parent cannot be identified is
			// denied rather than let through.
			return err != nil || d.mainDeny(r, parent)
		}
	}
	return false
}

func (d *decision) mainDeny(r *Rule, p *Process) bool {
	if r.Shell == nil {
		return sameProgramLoose(r.Exe, p.Exe)
	}
	if !sameProgramLoose(*r.Shell, p.Exe) {
		return false
	}
	script, _ := p.LoadScript()
	return script != nil && sameProgramLoose(r.Exe, *script)
}

// Match levels of a process against an ALLOW rule's program.
const (
	matchNo       = iota // another program
	matchMismatch        // the right path, but another (or no) fingerprint
	matchYes
)

// match is how a process matches an ALLOW rule's program, and why not.
type match struct {
	level int
	why   string // for matchMismatch, and for matchNo when worth logging
}

func compareProgram(rule, actual Program) match {
	switch {
	case actual.Path != rule.Path:
		return match{level: matchNo}
	case rule.SHA256 == "":
		return match{level: matchMismatch, why: "no fingerprint recorded for " + rule.Path + " (run 'mysecure acl update')"}
	case actual.SHA256 != rule.SHA256:
		return match{level: matchMismatch, why: "fingerprint mismatch for " + rule.Path + " (binary changed; run 'mysecure acl update')"}
	}
	return match{level: matchYes}
}

// allowMatches compares the process with r's program, strictly.
func (d *decision) allowMatches(r *Rule) match {
	m := mainAllow(r, d.p)
	if m.level == matchYes {
		return m
	}
	for _, c := range r.Children {
		cm := compareProgram(c, d.p.Exe)
		if cm.level == matchNo {
			continue
		}
		parent, err := d.getParent()
		if err != nil {
			return best(m, match{level: matchNo, why: fmt.Sprintf("%s is a child program of the rule, but its parent was not identified: %v", d.p.Exe.Path, err)})
		}
		pm := mainAllow(r, parent)
		switch {
		case pm.level == matchNo:
			return best(m, match{level: matchNo, why: fmt.Sprintf("%s is a child program of the rule, but its parent %s (pid %d) is not the rule's program", d.p.Exe.Path, describe(parent), parent.Pid)})
		case pm.level == matchMismatch:
			return best(m, match{level: matchMismatch, why: pm.why + ", parent of " + d.p.Exe.Path})
		default:
			return best(m, cm)
		}
	}
	return m
}

func best(a, b match) match {
	if b.level > a.level || (b.level == a.level && a.why == "") {
		return b
	}
	return a
}

func mainAllow(r *Rule, p *Process) match {
	if r.Shell == nil {
		return compareProgram(r.Exe, p.Exe)
	}
	sm := compareProgram(*r.Shell, p.Exe)
	if sm.level == matchNo {
		return sm
	}
	script, err := p.LoadScript()
	if script == nil {
		why := fmt.Sprintf("%s runs no script", p.Exe.Path)
		if err != nil {
			why = fmt.Sprintf("%s runs no identifiable script: %v", p.Exe.Path, err)
		}
		return match{level: matchNo, why: why}
	}
	scm := compareProgram(r.Exe, *script)
	if scm.level == matchNo {
		return scm
	}
	if sm.level == matchMismatch {
		return sm
	}
	return scm
}

// describe names a process's program for a reason.
func describe(p *Process) string {
	if p.Script != nil {
		return p.Exe.Path + " running " + p.Script.Path
	}
	return p.Exe.Path
}

// closest picks, for a default deny, the rule that would have matched and
// the reason: an ALLOW rule for this file and uid whose program path is
// right but fingerprint wrong; then one whose program is right but limited
// to other uids; then one for the program on other files of the category;
// then one that explains why the process's script or parent did not
// match; then any rule of the category whose pattern matches the file,
// then any rule of the category.
func (d *decision) closest(rules []Rule) (int, string) {
	const (
		scoreCategory = iota + 1
		scorePattern
		scoreExplained
		scoreOtherFiles
		scoreOtherUser
		scoreFingerprint
	)
	bestScore, bestIdx, reason := 0, -1, ""
	consider := func(score, i int, why string) {
		if score > bestScore {
			bestScore, bestIdx, reason = score, i, why
		}
	}
	for i := range rules {
		r := &rules[i]
		if !categoryMatches(r, d.req.Category) {
			continue
		}
		consider(scoreCategory, i, "")
		if r.Action != Allow {
			continue
		}
		patternOK := MatchPattern(r.Pattern, d.req.Path)
		if patternOK {
			consider(scorePattern, i, "")
		}
		m := d.allowMatches(r)
		switch {
		case m.level == matchMismatch && patternOK && userMatches(r, d.req.Uid):
			consider(scoreFingerprint, i, m.why)
		case m.level == matchYes && patternOK:
			consider(scoreOtherUser, i, fmt.Sprintf("rule %d allows %s only for uid %s, not %d", i+1, describe(d.p), uidList(r.Users), d.req.Uid))
		case m.level == matchYes:
			consider(scoreOtherFiles, i, fmt.Sprintf("rule %d allows %s only on files matching %q", i+1, describe(d.p), r.Pattern))
		case m.why != "" && patternOK && userMatches(r, d.req.Uid):
			consider(scoreExplained, i, m.why)
		}
	}
	if reason == "" {
		reason = "no rule allows " + describe(d.p)
	}
	return bestIdx, reason
}

func uidList(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, ",")
}
