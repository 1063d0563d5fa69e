package inplace

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// listXattrs returns the names of p's extended attributes (not following a
// final symlink). A filesystem without xattr support has none.
func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		var n int
		err := eintr(func() (err error) { n, err = unix.Llistxattr(p, buf); return err })
		if errors.Is(err, unix.ERANGE) {
			var need int
			err := eintr(func() (err error) { need, err = unix.Llistxattr(p, nil); return err })
			if err != nil {
				return nil, fmt.Errorf("failed to list xattrs of %s: %w", p, err)
			}
			buf = make([]byte, need+256)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list xattrs of %s: %w", p, err)
		}
		var names []string
		for name := range bytes.SplitSeq(buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		return names, nil
	}
}

// getXattr returns the value of one extended attribute of p.
func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		var n int
		err := eintr(func() (err error) { n, err = unix.Lgetxattr(p, name, buf); return err })
		if errors.Is(err, unix.ERANGE) {
			var need int
			err := eintr(func() (err error) { need, err = unix.Lgetxattr(p, name, nil); return err })
			if err != nil {
				return nil, fmt.Errorf("failed to read xattr %s of %s: %w", name, p, err)
			}
			buf = make([]byte, need+64)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read xattr %s of %s: %w", name, p, err)
		}
		return buf[:n], nil
	}
}

// xattrNamespace is the part of an xattr name before the first dot:
// "user", "trusted", "security", "system".
func xattrNamespace(name string) string {
	ns, _, _ := strings.Cut(name, ".")
	return ns
}

// copyXattrs copies every extended attribute of src to dst. One that
// cannot be set is an error: dropping it silently would lose a capability,
// an ACL or a label.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		if err := eintr(func() error { return unix.Lsetxattr(dst, name, val, 0) }); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				return fmt.Errorf("the filesystem of %s does not support %s.* extended attributes (%s of %s): %w",
					dst, xattrNamespace(name), name, src, err)
			}
			return fmt.Errorf("failed to set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}
