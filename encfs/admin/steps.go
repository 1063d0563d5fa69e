package admin

import (
	"context"
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
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
)

// The plan steps of the mount (see package internal/plan).

// CategoryStep needs the volume to have a category. Categories are made
// when the volume is created: the step only checks, and fails to apply.
type CategoryStep struct {
	Conn     Conn
	Category string
}

func (s *CategoryStep) ID() string       { return "category:" + s.Category }
func (s *CategoryStep) Describe() string { return "the volume has the category @" + s.Category }

func (s *CategoryStep) Check(ctx context.Context) (bool, string, error) {
	st, err := s.Conn.Client.Status(ctx)
	if err != nil {
		return false, "", err
	}
	if slices.Contains(st.Categories, s.Category) {
		return true, "", nil
	}
	return false, fmt.Sprintf("the volume has no category @%s (it has @%s)", s.Category, strings.Join(st.Categories, ", @")), nil
}

func (s *CategoryStep) Apply(ctx context.Context) error {
	return fmt.Errorf("%w @%s: categories are chosen when the volume is created ('mysecure init --categories')", volume.ErrUnknownCategory, s.Category)
}

func (s *CategoryStep) Undo(context.Context) error { return nil }

// EncryptStep moves a path into a category of the mount, leaving a
// symlink (what `mysecure encrypt @CAT PATH` does); Undo moves it back.
type EncryptStep struct {
	Conn     Conn
	Category string
	Path     string // absolute
	Force    bool
}

func (s *EncryptStep) ID() string { return "encrypt:" + s.Category + ":" + s.Path }
func (s *EncryptStep) Describe() string {
	return fmt.Sprintf("encrypt %s into @%s", s.Path, s.Category)
}

// Check: done when Path is a symlink to <mount>/CATEGORY/Path and what
// it points to exists.
func (s *EncryptStep) Check(ctx context.Context) (bool, string, error) {
	st, err := s.Conn.Client.Status(ctx)
	if err != nil {
		return false, "", err
	}
	want := filepath.Join(st.Mount, s.Category, s.Path)
	fi, err := os.Lstat(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Sprintf("%s does not exist", s.Path), nil
	}
	if err != nil {
		return false, "", err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return false, fmt.Sprintf("%s is not encrypted (not a symlink into @%s)", s.Path, s.Category), nil
	}
	target, err := os.Readlink(s.Path)
	if err != nil {
		return false, "", err
	}
	if target != want {
		return false, fmt.Sprintf("%s points to %s, not into @%s (%s)", s.Path, target, s.Category, want), nil
	}
	if _, err := os.Lstat(want); err != nil {
		return false, fmt.Sprintf("%s points into @%s but %s is missing: %v", s.Path, s.Category, want, errors.Unwrap(err)), nil
	}
	return true, "", nil
}

func (s *EncryptStep) Apply(ctx context.Context) error {
	return Move(ctx, s.Conn, true, s.Category, []string{s.Path}, MoveOptions{Force: s.Force})
}

func (s *EncryptStep) Undo(ctx context.Context) error {
	return Move(ctx, s.Conn, false, s.Category, []string{s.Path}, MoveOptions{})
}

// RuleStep adds an access rule; Undo deletes it. Check finds the rule in
// force, compares the fingerprint it holds with the program's file on
// the host (a package upgrade changes it), and, for a rule limited to
// users (--user), checks that those users can reach the mount.
type RuleStep struct {
	Conn Conn
	Rule string
}

func (s *RuleStep) ID() string       { return "rule:" + s.Rule }
func (s *RuleStep) Describe() string { return "add rule: " + s.Rule }

// want parses the rule and fills it as the daemon would (symlinks
// resolved, fingerprints of the files on the host).
func (s *RuleStep) want() (acl.Rule, error) {
	r, err := acl.ParseRule(s.Rule)
	if err != nil {
		return acl.Rule{}, err
	}
	if err := acl.NewIdentifier(acl.IdentifierOptions{}).FillRule(&r); err != nil {
		return acl.Rule{}, err
	}
	return r, nil
}

func (s *RuleStep) Check(ctx context.Context) (bool, string, error) {
	want, err := s.want()
	if err != nil {
		return false, "", err
	}
	list, err := s.Conn.Client.ACLList(ctx)
	if err != nil {
		return false, "", err
	}
	var found *daemon.RuleInfo
	for i := range list.Rules {
		if list.Rules[i].Rule.Equal(want) {
			found = &list.Rules[i]
			break
		}
	}
	if found == nil {
		return false, "rule missing: " + s.Rule, nil
	}
	have, wantP := found.Rule.Programs(), want.Programs()
	for i := range have {
		if i < len(wantP) && have[i].SHA256 != wantP[i].SHA256 {
			return false, fmt.Sprintf("rule %d: %s changed since the rule was added (sha256 %.12s… now %.12s…): if the change is a package upgrade you trust, run 'mysecure acl update'",
				found.Index, have[i].Path, have[i].SHA256, wantP[i].SHA256), nil
		}
	}
	if len(want.Users) > 0 {
		st, err := s.Conn.Client.Status(ctx)
		if err != nil {
			return false, "", err
		}
		for _, uid := range want.Users {
			if err := Reachable(st.Mount, uid); err != nil {
				return true, fmt.Sprintf("rule %d: the mount is unreachable for uid %d: %v", found.Index, uid, err), nil
			}
		}
	}
	return true, "", nil
}

// ErrFingerprintChanged: a rule is in force for an older build of its
// program. Apply does not trust the new one by itself.
var ErrFingerprintChanged = errors.New("a program's fingerprint changed")

func (s *RuleStep) Apply(ctx context.Context) error {
	// A rule there with an old fingerprint: say so rather than fail on
	// "exists already"; trusting the new build is the admin's call.
	if done, drift, err := s.Check(ctx); err == nil && !done && strings.Contains(drift, "changed since") {
		return fmt.Errorf("%w: %s", ErrFingerprintChanged, drift)
	}
	_, err := s.Conn.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: s.Rule, Credential: s.Conn.Cred})
	return err
}

func (s *RuleStep) Undo(ctx context.Context) error {
	_, err := s.Conn.Client.ACL(ctx, daemon.ACLRequest{Op: "del", Rule: s.Rule, Credential: s.Conn.Cred})
	return err
}

// Reachable reports whether uid can traverse every directory from / to
// dir (search permission), the way a server that runs as that user
// reaches its datadir on the mount. Root always can.
func Reachable(dir string, uid uint32) error {
	if uid == 0 {
		return nil
	}
	gids := map[uint32]bool{}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gids[uint32(g)] = true
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					gids[uint32(g)] = true
				}
			}
		}
	}
	p := "/"
	parts := strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/")
	for i := 0; ; i++ {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var bit uint32
		switch {
		case st.Uid == uid:
			bit = 0o100
		case gids[st.Gid]:
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return fmt.Errorf("%s is mode %04o, owner %d, group %d: no search permission", p, st.Mode&0o7777, st.Uid, st.Gid)
		}
		if i >= len(parts) || parts[0] == "" {
			return nil
		}
		p = filepath.Join(p, parts[i])
	}
}
