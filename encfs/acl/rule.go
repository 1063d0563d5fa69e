package acl

import (
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Action is what a rule does when it matches: Allow or Deny.
type Action string

// The two actions. DENY rules win over ALLOW rules.
const (
	Allow Action = "ALLOW"
	Deny  Action = "DENY"
)

// AllCategories is the Category of a rule written `@*`: it applies to every
// category.
const AllCategories = "*"

// Program is an executable (or script) known by path and SHA-256
// fingerprint (64 lower-case hex digits). An empty SHA256 means "not
// fingerprinted yet": such a program never matches an ALLOW rule.
type Program struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Rule is one access rule. See ParseRule for the text form.
type Rule struct {
	Action   Action    `json:"action"`
	Category string    `json:"category"`           // without '@'; "*" means every category (@*)
	Pattern  string    `json:"pattern"`            // relative to the category: "*", "*.cnf", "dir/*"
	Exe      Program   `json:"exe"`                // the program; for --shell rules, the SCRIPT
	Shell    *Program  `json:"shell,omitempty"`    // --shell=/bin/bash: the interpreter
	Children []Program `json:"children,omitempty"` // --children=/bin/df,/bin/ls
	Users    []uint32  `json:"users,omitempty"`    // --user=NAME|UID; empty = any uid
}

// maxUsers and maxChildren bound a rule's lists, so a stored or pasted rule
// cannot make every decision slow.
const (
	maxUsers    = 256
	maxChildren = 256
)

var (
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidCategory reports whether name (without the leading '@') can name a
// category in a rule: a lower-case letter and up to 31 of [a-z0-9_-], or
// "*" for every category.
func ValidCategory(name string) bool {
	return name == AllCategories || categoryRE.MatchString(name)
}

// ParseRule parses one rule line:
//
//	ACTION @CATEGORY PATTERN PROGRAM [--shell=INTERPRETER] [--children=PROG,...] [--user=NAME|UID,...]
//
// for example
//
//	ALLOW @mysqlbackup * /usr/bin/mysqldump
//	DENY @* *.cnf /usr/bin/cat
//	ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/df,/bin/ls --user=mysql
//
// Fields are separated by white space; one pair of double quotes (ASCII or
// typographic, as in the product's old documentation) around the whole line
// is removed. ACTION is ALLOW or DENY in any case. CATEGORY is a category
// name or '*'. PATTERN is relative to the category (no leading '/', no '..'
// component); see MatchPattern. PROGRAM, the interpreter and the children
// are absolute clean paths; with --shell, PROGRAM is the script the
// interpreter runs. Options take their value after '=' or as the next
// field; --children and --user may be repeated or given a comma list; user
// names are resolved to uids with os/user. Children and users are sorted
// and de-duplicated.
//
// Fingerprints are left empty: the daemon fills them (Identifier.Fingerprint).
// Errors are one line and say what is wrong and where.
func ParseRule(line string) (Rule, error) {
	fields, err := splitRule(line)
	if err != nil {
		return Rule{}, err
	}
	if len(fields) < 4 {
		return Rule{}, fmt.Errorf("rule: want ACTION @CATEGORY PATTERN PROGRAM [OPTIONS], got %d field(s): %q", len(fields), strings.Join(fields, " "))
	}
	var r Rule
	switch a := Action(strings.ToUpper(fields[0])); a {
	case Allow, Deny:
		r.Action = a
	default:
		return Rule{}, fmt.Errorf("rule: action must be ALLOW or DENY: %q", fields[0])
	}
	cat, ok := strings.CutPrefix(fields[1], "@")
	if !ok {
		return Rule{}, fmt.Errorf("rule: category must start with '@': %q", fields[1])
	}
	r.Category = cat
	r.Pattern = fields[2]
	r.Exe.Path = fields[3]

	seenShell := false
	for i := 4; i < len(fields); i++ {
		f := fields[i]
		name, value, hasValue := strings.Cut(f, "=")
		switch {
		case strings.HasPrefix(f, "\u2013") || strings.HasPrefix(f, "\u2014"):
			return Rule{}, fmt.Errorf("rule: option starts with a typographic dash, type two ASCII hyphens: %q", f)
		case !strings.HasPrefix(f, "--"):
			return Rule{}, fmt.Errorf("rule: unexpected field %d after the program (options start with --): %q", i+1, f)
		}
		switch name {
		case "--shell", "--children", "--user":
		default:
			return Rule{}, fmt.Errorf("rule: unknown option (want --shell, --children or --user): %q", f)
		}
		if !hasValue {
			if i+1 >= len(fields) {
				return Rule{}, fmt.Errorf("rule: option %s needs a value", name)
			}
			i++
			value = fields[i]
		}
		if value == "" {
			return Rule{}, fmt.Errorf("rule: option %s needs a value", name)
		}
		switch name {
		case "--shell":
			if seenShell {
				return Rule{}, fmt.Errorf("rule: --shell given twice: %q", f)
			}
			seenShell = true
			r.Shell = &Program{Path: value}
		case "--children":
			for _, c := range strings.Split(value, ",") {
				if c == "" {
					return Rule{}, fmt.Errorf("rule: empty path in --children: %q", value)
				}
				r.Children = append(r.Children, Program{Path: c})
			}
		case "--user":
			for _, u := range strings.Split(value, ",") {
				uid, err := lookupUID(u)
				if err != nil {
					return Rule{}, err
				}
				r.Users = append(r.Users, uid)
			}
		}
	}
	r.normalize()
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// splitRule removes one pair of surrounding quotes and splits on white
// space. A quote left inside a field is an error: it is a paste gone wrong,
// never part of a path a rule can express.
func splitRule(line string) ([]string, error) {
	s := strings.TrimSpace(line)
	for _, q := range [][2]string{{`"`, `"`}, {"\u201c", "\u201d"}} {
		if len(s) >= len(q[0])+len(q[1]) && strings.HasPrefix(s, q[0]) && strings.HasSuffix(s, q[1]) {
			s = strings.TrimSpace(s[len(q[0]) : len(s)-len(q[1])])
			break
		}
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("rule: empty rule")
	}
	for _, f := range fields {
		if strings.ContainsAny(f, "\"\u201c\u201d") {
			return nil, fmt.Errorf("rule: unbalanced or inner quote (quote the whole rule or nothing): %q", f)
		}
	}
	return fields, nil
}

// lookupUID resolves a --user value: a number is a uid, anything else a
// user name looked up with os/user.
func lookupUID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("rule: empty user in --user")
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 1<<32-1 {
			return 0, fmt.Errorf("rule: bad uid in --user: %q", s)
		}
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("rule: unknown user in --user: %q", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("rule: user %q has a non-numeric uid %q", s, u.Uid)
	}
	return uint32(n), nil
}

// normalize sorts and de-duplicates children (by path) and users, so that
// equal rules have equal text.
func (r *Rule) normalize() {
	slices.SortFunc(r.Children, func(a, b Program) int { return strings.Compare(a.Path, b.Path) })
	r.Children = slices.CompactFunc(r.Children, func(a, b Program) bool { return a.Path == b.Path })
	slices.Sort(r.Users)
	r.Users = slices.Compact(r.Users)
}

// Validate checks a rule built by hand or read from storage: everything
// ParseRule checks except user names (Users are already uids), plus that
// fingerprints are empty or 64 lower-case hex digits. Errors start with
// "rule: ".
func (r Rule) Validate() error {
	if r.Action != Allow && r.Action != Deny {
		return fmt.Errorf("rule: action must be ALLOW or DENY: %q", string(r.Action))
	}
	if !ValidCategory(r.Category) {
		return fmt.Errorf("rule: category must be '@' and a lower-case letter, then up to 31 of a-z 0-9 _ -, or '@*': %q", "@"+r.Category)
	}
	if err := validPattern(r.Pattern); err != nil {
		return err
	}
	if err := validProgram("program", r.Exe, false); err != nil {
		return err
	}
	if r.Shell != nil {
		if err := validProgram("--shell", *r.Shell, false); err != nil {
			return err
		}
	}
	if len(r.Children) > maxChildren {
		return fmt.Errorf("rule: more than %d --children", maxChildren)
	}
	for _, c := range r.Children {
		if err := validProgram("--children", c, true); err != nil {
			return err
		}
	}
	if len(r.Users) > maxUsers {
		return fmt.Errorf("rule: more than %d --user", maxUsers)
	}
	for _, u := range r.Users {
		if u == 1<<32-1 {
			return fmt.Errorf("rule: bad uid in --user: %d", u)
		}
	}
	return nil
}

func validPattern(p string) error {
	switch {
	case p == "":
		return errors.New("rule: empty pattern")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("rule: pattern must be relative to the category (no leading '/'): %q", p)
	case !printableField(p):
		return fmt.Errorf("rule: pattern holds a space, quote or control character: %q", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("rule: pattern must not have a '..' component: %q", p)
		}
	}
	return nil
}

func validProgram(what string, p Program, inList bool) error {
	switch {
	case p.Path == "":
		return fmt.Errorf("rule: empty path for %s", what)
	case !filepath.IsAbs(p.Path):
		return fmt.Errorf("rule: %s must be an absolute path: %q", what, p.Path)
	case filepath.Clean(p.Path) != p.Path:
		return fmt.Errorf("rule: %s must be a clean path (want %q): %q", what, filepath.Clean(p.Path), p.Path)
	case !printableField(p.Path):
		return fmt.Errorf("rule: %s path holds a space, quote or control character: %q", what, p.Path)
	case inList && strings.Contains(p.Path, ","):
		return fmt.Errorf("rule: %s path holds a comma: %q", what, p.Path)
	case p.SHA256 != "" && !sha256RE.MatchString(p.SHA256):
		return fmt.Errorf("rule: %s fingerprint is not 64 lower-case hex digits: %q", what, p.SHA256)
	}
	return nil
}

// printableField reports whether s can stand as one field of a rule line:
// no white space, quote or control character.
func printableField(s string) bool {
	if f := strings.Fields(s); len(f) != 1 || f[0] != s {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '"' || c == '\u201c' || c == '\u201d' {
			return false
		}
	}
	return true
}

// String returns the canonical rule line, which ParseRule reads back to an
// equal rule (fingerprints are not part of the text). Users are shown as
// numeric uids.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(string(r.Action))
	b.WriteString(" @")
	b.WriteString(r.Category)
	b.WriteByte(' ')
	b.WriteString(r.Pattern)
	b.WriteByte(' ')
	b.WriteString(r.Exe.Path)
	if r.Shell != nil {
		b.WriteString(" --shell=")
		b.WriteString(r.Shell.Path)
	}
	if len(r.Children) > 0 {
		b.WriteString(" --children=")
		for i, c := range r.Children {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(c.Path)
		}
	}
	if len(r.Users) > 0 {
		b.WriteString(" --user=")
		for i, u := range r.Users {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(uint64(u), 10))
		}
	}
	return b.String()
}

// Equal reports whether r and o are the same rule: same action, category,
// pattern, program path, interpreter path, set of children paths and set of
// users. Fingerprints are ignored, so a rule given again on the command
// line is found in the stored set.
func (r Rule) Equal(o Rule) bool {
	if r.Action != o.Action || r.Category != o.Category || r.Pattern != o.Pattern || r.Exe.Path != o.Exe.Path {
		return false
	}
	if (r.Shell == nil) != (o.Shell == nil) || (r.Shell != nil && r.Shell.Path != o.Shell.Path) {
		return false
	}
	a, b := r.clone(), o.clone()
	a.normalize()
	b.normalize()
	return slices.EqualFunc(a.Children, b.Children, func(x, y Program) bool { return x.Path == y.Path }) &&
		slices.Equal(a.Users, b.Users)
}

// clone returns a deep copy of r.
func (r Rule) clone() Rule {
	c := r
	if r.Shell != nil {
		s := *r.Shell
		c.Shell = &s
	}
	c.Children = slices.Clone(r.Children)
	c.Users = slices.Clone(r.Users)
	return c
}

// Programs returns every program a rule names: the program (the script for
// --shell rules), the interpreter and the children. The pointers point into
// r, so a caller (the daemon, filling fingerprints) can set SHA256 in place.
func (r *Rule) Programs() []*Program {
	ps := []*Program{&r.Exe}
	if r.Shell != nil {
		ps = append(ps, r.Shell)
	}
	for i := range r.Children {
		ps = append(ps, &r.Children[i])
	}
	return ps
}
