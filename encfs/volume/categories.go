package volume

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mysecure/mysecure/encfs/names"
)

// MaxCategories bounds the categories AddCategory lets a volume have.
const MaxCategories = 256

// Categories can be added to and removed from an existing volume. The
// config's "categories" list is all there is to it: the keys of a
// category are derived from the master key and its name (HKDF, as at
// init), so adding one changes nothing else and needs no new format.
// Both are config writes: they need a master credential and go through
// save, which bumps the generation under a new MAC.

// AddCategory adds category name to the config and saves it. k must come
// from a master credential (ErrNotMasterCredential otherwise) and belong
// to v's volume. The category's store directory is made by the mount
// (encfs/fusefs), as for the categories of init.
func (v *Volume) AddCategory(k *Keys, name string) error {
	if err := k.RequireMaster(); err != nil {
		return err
	}
	if err := v.checkKeys(k); err != nil {
		return err
	}
	if !ValidCategory(name) {
		return fmt.Errorf("%w %q: want a lower-case letter, then up to 31 of a-z 0-9 _ -", ErrBadCategoryName, name)
	}
	if v.Config.HasCategory(name) {
		return fmt.Errorf("%w: @%s", ErrCategoryExists, name)
	}
	if len(v.Config.Categories) >= MaxCategories {
		return fmt.Errorf("the volume has %d categories, the most allowed", MaxCategories)
	}
	old := v.Config.Categories
	v.Config.Categories = append(slices.Clone(old), name)
	if err := v.save(k); err != nil {
		v.Config.Categories = old
		return err
	}
	k.setCategories(v.Config.Categories)
	return nil
}

// RemoveCategory removes category name from the config and saves it, then
// removes its store directory when that holds nothing but its name IV.
// k must come from a master credential and belong to v's volume.
//
// It refuses (ErrCategoryInUse) a category whose store directory holds
// any file or directory, or that refs name: refs describe what else still
// names the category (the access rules, which this package does not
// read), one string each. The last category cannot be removed
// (ErrLastCategory).
//
// Data is never lost by a removal: only an empty category can go, and a
// category added again under the same name gets the same keys.
func (v *Volume) RemoveCategory(k *Keys, name string, refs []string) error {
	if err := k.RequireMaster(); err != nil {
		return err
	}
	if err := v.checkKeys(k); err != nil {
		return err
	}
	if err := CheckCategory(name, v.Config.Categories); err != nil {
		return err
	}
	if len(v.Config.Categories) == 1 {
		return fmt.Errorf("%w @%s", ErrLastCategory, name)
	}
	if len(refs) > 0 {
		return fmt.Errorf("%w: @%s is named by %s", ErrCategoryInUse, name, strings.Join(refs, "; "))
	}
	n, err := v.CategoryEntries(name)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: @%s is not empty: %s", ErrCategoryInUse, name, entries(n, v.CategoryDir(name)))
	}
	old := v.Config.Categories
	v.Config.Categories = slices.DeleteFunc(slices.Clone(old), func(c string) bool { return c == name })
	if err := v.save(k); err != nil {
		v.Config.Categories = old
		return err
	}
	k.setCategories(v.Config.Categories)
	removeCategoryDir(v.CategoryDir(name))
	return nil
}

// removeCategoryDir removes an empty category directory, best effort: a
// leftover one holds no data, and a category added again under its name
// uses it as it is. Should an entry appear after the emptiness check (an
// operation of a mount already under way), the name IV is put back, so
// that adding the category again shows the entry under its name.
func removeCategoryDir(dir string) {
	iv, err := names.ReadDirIV(dir)
	if err != nil {
		_ = os.Remove(dir) // no IV: nothing can be named in it
		return
	}
	if err := os.Remove(names.DirIVPath(dir)); err != nil {
		return
	}
	if err := os.Remove(dir); err != nil {
		_ = names.WriteDirIV(dir, iv)
	}
}

func entries(n int, dir string) string {
	if n == 1 {
		return "1 entry in " + dir
	}
	return fmt.Sprintf("%d entries in %s", n, dir)
}

// CategoryDir returns the store directory of category name.
func (v *Volume) CategoryDir(name string) string { return filepath.Join(v.Dir, name) }

// CategoryEntries returns how many entries the store directory of category
// name holds besides its name IV: 0 for an empty category (or one whose
// directory the mount has not made yet). Any entry counts, even one that
// is not a valid encrypted name.
func (v *Volume) CategoryEntries(name string) (int, error) {
	if !ValidCategory(name) {
		return 0, fmt.Errorf("%w %q", ErrBadCategoryName, name)
	}
	ents, err := os.ReadDir(v.CategoryDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to read category directory: %w", err)
	}
	n := 0
	for _, e := range ents {
		if e.Name() != names.DirIVFile {
			n++
		}
	}
	return n, nil
}

// checkKeys refuses keys of another volume: saving with them would write
// a config whose MAC no credential of this volume verifies.
func (v *Volume) checkKeys(k *Keys) error {
	if k.master == nil {
		return errors.New("keys were wiped")
	}
	if !bytes.Equal(k.volumeID, v.Config.volumeID()) {
		return fmt.Errorf("the keys belong to volume %x, not %s", k.volumeID, v.Config.VolumeID)
	}
	return nil
}

// FollowCategories makes k know the categories of v, a config of the same
// volume that other keys changed (AddCategory, RemoveCategory): how a
// running daemon's keys learn of a category added with the credential
// given for that change. v must have been unlocked (its MAC checked).
func (k *Keys) FollowCategories(v *Volume) error {
	if !bytes.Equal(k.volumeID, v.Config.volumeID()) {
		return fmt.Errorf("the keys belong to volume %x, not %s", k.volumeID, v.Config.VolumeID)
	}
	k.setCategories(v.Config.Categories)
	return nil
}
