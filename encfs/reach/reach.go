// Package reach tells whether the program of an access rule can get to
// the mount at all: the rules decide what a process may open inside the
// mount, but the kernel first checks search permission on every directory
// on the way to it, as the user the program runs as. A store created
// 0700 with its parents made everything behind the mount unreachable for
// a server running as mysql, with no denial logged to say why.
//
// It only reads file metadata; it never opens files on the mount (the
// daemon must never call it on its own mount).
package reach

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/encfs/acl"
)

// Blocked is a directory that a user cannot search.
type Blocked struct {
	Dir  string      // the first directory on the way that blocks
	Mode os.FileMode // its permission bits
	UID  uint32      // its owner
	GID  uint32      // its group
}

// Blocker returns the first directory on the way to path (path itself
// included, when it is a directory) that uid, with the groups gids, cannot
// search, or nil. Root passes everywhere. POSIX ACLs are not read: a
// directory opened to the user by an ACL is reported as blocking.
func Blocker(path string, uid uint32, gids []uint32) (*Blocked, error) {
	if uid == 0 {
		return nil, nil
	}
	path = filepath.Clean(path)
	var chain []string
	for p := path; ; p = filepath.Dir(p) {
		chain = append(chain, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		var st syscall.Stat_t
		if err := syscall.Stat(chain[i], &st); err != nil {
			return nil, fmt.Errorf("failed to stat %s: %w", chain[i], err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue
		}
		mode := os.FileMode(st.Mode & 0o777)
		var bit uint32
		switch {
		case st.Uid == uid:
			bit = 0o100
		case slices.Contains(gids, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return &Blocked{Dir: chain[i], Mode: mode, UID: st.Uid, GID: st.Gid}, nil
		}
	}
	return nil, nil
}

// User is an account a rule's program runs as.
type User struct {
	Name string
	UID  uint32
	GIDs []uint32
}

// LookupUser resolves uid to its name and groups (primary and
// supplementary); an unknown uid has only its number.
func LookupUser(uid uint32) User {
	u := User{Name: strconv.FormatUint(uint64(uid), 10), UID: uid}
	pu, err := user.LookupId(u.Name)
	if err != nil {
		return u
	}
	u.Name = pu.Username
	if g, err := strconv.ParseUint(pu.Gid, 10, 32); err == nil {
		u.GIDs = append(u.GIDs, uint32(g))
	}
	if ids, err := pu.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(u.GIDs, uint32(g)) {
				u.GIDs = append(u.GIDs, uint32(g))
			}
		}
	}
	return u
}

// Problem is a rule whose program cannot reach the mount point as a user
// it runs as.
type Problem struct {
	Rule string
	User User
	Blocked
}

func (p Problem) String() string {
	return fmt.Sprintf("rule %q: %s (uid %d) cannot reach the mount: %s is mode %04o, owner %d, group %d", p.Rule, p.User.Name, p.User.UID, p.Dir, p.Mode, p.UID, p.GID)
}

// Hint says how to open the way.
func (p Problem) Hint() string {
	return fmt.Sprintf("chmod o+x %s (the mount's own rules still decide who reads what behind it)", p.Dir)
}

// RuleUsers returns the users a rule's program runs as: the rule's
// --user list, else the owner of the paths it protects (the deepest
// existing directory of the pattern's fixed prefix in the mount), when
// that owner is not root. A rule on every category without --user has
// none.
func RuleUsers(mount string, r acl.Rule) []uint32 {
	if len(r.Users) > 0 {
		return r.Users
	}
	if r.Category == acl.AllCategories {
		return nil
	}
	prefix := r.Pattern
	if i := strings.IndexAny(prefix, "*?"); i >= 0 {
		prefix = prefix[:i]
	}
	base := filepath.Join(mount, r.Category)
	p := filepath.Join(base, prefix)
	if !strings.HasSuffix(prefix, "/") && prefix != "" {
		p = filepath.Dir(p)
	}
	for ; strings.HasPrefix(p, base); p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			if st.Uid == 0 {
				return nil
			}
			return []uint32{st.Uid}
		}
		if p == base {
			break
		}
	}
	return nil
}

// Check returns the rules (as texts, with their parsed form) whose
// program cannot reach mount as a user it runs as.
func Check(mount string, rules map[string]acl.Rule) []Problem {
	var out []Problem
	texts := make([]string, 0, len(rules))
	for t := range rules {
		texts = append(texts, t)
	}
	slices.Sort(texts)
	for _, text := range texts {
		r := rules[text]
		if r.Action != acl.Allow {
			continue
		}
		for _, uid := range RuleUsers(mount, r) {
			u := LookupUser(uid)
			b, err := Blocker(mount, uid, u.GIDs)
			if err != nil || b == nil {
				continue
			}
			out = append(out, Problem{Rule: text, User: u, Blocked: *b})
		}
	}
	return out
}
