package admin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/hint"
)

// Category changes (`mysecure category`): through the daemon when it
// serves the store, else on the volume config directly. Errors carry the
// hint that fits a refused change.

// Category operations, as the daemon's CategoryRequest names them.
const (
	CategoryAdd    = "add"
	CategoryRemove = "remove"
)

// ParseCategoryName accepts NAME or @NAME.
func ParseCategoryName(arg string) (string, error) {
	name := strings.TrimPrefix(arg, "@")
	if !volume.ValidCategory(name) {
		return "", hint.Wrap(fmt.Errorf("%w %q", volume.ErrBadCategoryName, arg),
			"a category name is a lower-case letter, then up to 31 of a-z 0-9 _ - (no dot)")
	}
	return name, nil
}

// ChangeCategory adds or removes (op) the category name through the
// daemon, and returns the volume config's new generation. c.Cred must be
// the master credential, admin mode or not: this rewrites the volume
// config.
func ChangeCategory(ctx context.Context, c Conn, op, name string) (uint64, error) {
	r, err := c.Client.Category(ctx, daemon.CategoryRequest{Op: op, Name: name, Credential: c.Cred})
	if err != nil {
		return 0, categoryError(err, op, name)
	}
	return r.Generation, nil
}

// ChangeCategoryOffline adds or removes (op) the category name on v,
// unlocked with the master key k, when no daemon serves it, and returns
// the volume config's new generation. A category that a rule names
// (rules.json, verified with k) is not removed.
func ChangeCategoryOffline(v *volume.Volume, k *volume.Keys, op, name string) (uint64, error) {
	var err error
	switch op {
	case CategoryAdd:
		err = v.AddCategory(k, name)
	case CategoryRemove:
		var refs []string
		if v.Config.HasCategory(name) {
			rs, err := daemon.LoadRules(v.Dir, k)
			if err != nil {
				return 0, err
			}
			refs = rs.CategoryRefs(name)
		}
		err = v.RemoveCategory(k, name, refs)
	default:
		return 0, fmt.Errorf("unknown category operation %q", op)
	}
	if err != nil {
		return 0, categoryError(err, op, name)
	}
	return v.Config.Generation, nil
}

// categoryError adds the hint that fits a refused category change. The
// daemon's errors unwrap to the volume's sentinels.
func categoryError(err error, op, name string) error {
	switch {
	case errors.Is(err, volume.ErrCategoryInUse):
		return hint.Wrap(err, fmt.Sprintf("move its data out first ('mysecure decrypt @%s PATH') and delete the rules that name it ('mysecure acl del N')", name))
	case errors.Is(err, volume.ErrUnknownCategory) && op == CategoryRemove:
		return hint.Wrap(err, "'mysecure category list' shows the categories")
	}
	return err
}

// OfflineCategories lists the categories of the volume in store without
// a daemon, sorted, with how many entries each holds and how many rules
// name it. The rule counts come from rules.json without checking its MAC
// (listing needs no credential): say so to the user.
func OfflineCategories(store string) ([]daemon.CategoryInfo, error) {
	v, err := volume.Load(store)
	if err != nil {
		return nil, err
	}
	counts, err := acl.UnverifiedCategoryCounts(filepath.Join(store, daemon.RulesFile))
	if err != nil {
		return nil, err
	}
	out := []daemon.CategoryInfo{}
	cats := slices.Clone(v.Config.Categories)
	slices.Sort(cats)
	for _, name := range cats {
		n, err := v.CategoryEntries(name)
		if err != nil {
			return nil, err
		}
		out = append(out, daemon.CategoryInfo{Name: name, Entries: n, Empty: n == 0, Rules: counts[name]})
	}
	return out, nil
}

// OtherStoreError is a daemon that serves another store than the one
// asked for.
type OtherStoreError struct {
	Socket string // the daemon's control socket
	Serves string // the store it serves
	Store  string // the store asked for
}

func (e *OtherStoreError) Error() string {
	return fmt.Sprintf("the daemon on %s serves the store %s, not %s", e.Socket, e.Serves, e.Store)
}

// StoreDaemon returns c when its daemon serves store, nil when no daemon
// runs (changes then go to the volume config directly), and an
// *OtherStoreError when it serves another store (changing that one
// instead would surprise).
func StoreDaemon(ctx context.Context, c *daemon.Client, socket, store string) (*daemon.Client, error) {
	s, err := c.Status(ctx)
	if errors.Is(err, daemon.ErrNotRunning) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if filepath.Clean(s.Store) != filepath.Clean(store) {
		return nil, &OtherStoreError{Socket: socket, Serves: s.Store, Store: store}
	}
	return c, nil
}

// ListCategories lists the categories of the volume in store: from the
// daemon on c when it serves that store (online), else from the disk
// (OfflineCategories), also when the daemon serves another store: a
// listing changes nothing, unlike add and remove.
func ListCategories(ctx context.Context, c *daemon.Client, socket, store string) (cats []daemon.CategoryInfo, online bool, err error) {
	c, err = StoreDaemon(ctx, c, socket, store)
	var other *OtherStoreError
	if errors.As(err, &other) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, false, err
	}
	if c != nil {
		r, err := c.Categories(ctx)
		return r.Categories, true, err
	}
	cats, err = OfflineCategories(store)
	return cats, false, err
}
