package inplace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// verifyCopy checks, just before the swap, that the source still matches
// its copy: same entries, types, owners, modes, sizes, symlink targets and
// mtimes. A writer that slipped in during the copy (or after a crash, before
// recovery) changes an mtime, a size or an entry, and the job is rolled
// back rather than losing its writes. It reads metadata only.
func verifyCopy(ctx context.Context, src, dst string) error {
	changed := func(p, what string) error {
		return fmt.Errorf("%w: %s changed while it was being copied (%s); stop the programs that write to it and try again",
			ErrInUse, p, what)
	}
	var walk func(s, d string) error
	walk = func(s, d string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ss, err := lstat(s)
		if err != nil {
			return changed(s, "it can no longer be read: "+err.Error())
		}
		ds, err := lstat(d)
		if err != nil {
			return changed(s, "its copy is missing")
		}
		switch {
		case ss.Mode&unix.S_IFMT != ds.Mode&unix.S_IFMT:
			return changed(s, "type")
		case ss.Uid != ds.Uid || ss.Gid != ds.Gid:
			return changed(s, "owner")
		case ss.Mode&unix.S_IFMT != unix.S_IFLNK && ss.Mode&0o7777 != ds.Mode&0o7777:
			return changed(s, "mode")
		case ss.Mode&unix.S_IFMT != unix.S_IFDIR && ss.Mtim != ds.Mtim:
			return changed(s, "modification time")
		case ss.Mode&unix.S_IFMT == unix.S_IFREG && ss.Size != ds.Size:
			return changed(s, "size")
		}
		switch ss.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			st, err1 := os.Readlink(s)
			dt, err2 := os.Readlink(d)
			if err1 != nil || err2 != nil || st != dt {
				return changed(s, "symlink target")
			}
		case unix.S_IFDIR:
			sn, err := readDirNames(s)
			if err != nil {
				return changed(s, "it can no longer be read: "+err.Error())
			}
			dn, err := readDirNames(d)
			if err != nil {
				return fmt.Errorf("failed to read the copy %s: %w", d, err)
			}
			if !slices.Equal(sn, dn) {
				return changed(s, "entries were added or removed")
			}
			for _, n := range sn {
				if err := walk(filepath.Join(s, n), filepath.Join(d, n)); err != nil {
					return err
				}
			}
			if ss.Mtim != ds.Mtim {
				return changed(s, "modification time")
			}
		}
		return nil
	}
	return walk(src, dst)
}
