package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The configuration's path lives in the guard program itself: 'harden
// mysqld' writes it into the installed copy (PatchConfigPath) before the
// rules pin that copy's fingerprint. Changing the path therefore changes
// the fingerprint, and a changed guard may not read the real binary. A
// path from the environment or a root-writable pointer file would let
// whoever starts the server choose the configuration (issue 13).
const (
	slotMarker = "MYSECURE-GUARD-CONFIG-PATH:"
	slotFill64 = "################################################################"
	slotFill   = slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 +
		slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64 + slotFill64
	unpatchedSlot = slotMarker + slotFill
)

// configSlot is patched in the installed copy; see PatchConfigPath.
var configSlot = unpatchedSlot

// ConfigPath is the configuration this copy of the guard reads: the path
// written into it at install, or DefaultConfigPath in an unpatched build.
func ConfigPath() string {
	return slotPath(configSlot)
}

func slotPath(slot string) string {
	v := slot[len(slotMarker):]
	if v == "" || v[0] == '#' {
		return DefaultConfigPath
	}
	if i := strings.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return v
}

// PatchConfigPath returns a copy of the guard program prog with path
// written into its configuration slot. The program must hold exactly one
// unpatched slot.
func PatchConfigPath(prog []byte, path string) ([]byte, error) {
	if !filepath.IsAbs(path) || strings.IndexByte(path, 0) >= 0 || path[0] == '#' {
		return nil, fmt.Errorf("guard configuration path %q must be absolute", path)
	}
	if len(path)+1 > len(slotFill) {
		return nil, fmt.Errorf("guard configuration path is %d bytes, at most %d fit", len(path), len(slotFill)-1)
	}
	slot := []byte(unpatchedSlot)
	i := bytes.Index(prog, slot)
	if i < 0 {
		return nil, errors.New("the guard program has no unpatched configuration slot (not a mysqld-guard build, or installed already)")
	}
	if bytes.Contains(prog[i+len(slot):], slot) {
		return nil, errors.New("the guard program has more than one configuration slot")
	}
	out := bytes.Clone(prog)
	v := out[i+len(slotMarker) : i+len(slot)]
	copy(v, path)
	v[len(path)] = 0
	return out, nil
}

// fuseMagic is FUSE_SUPER_MAGIC.
const fuseMagic = 0x65735546

// maxConfigSize bounds what the guard reads.
const maxConfigSize = 1 << 20

// ErrUntrusted: the configuration, binary or datadir is not where the
// hardened setup put them.
var ErrUntrusted = errors.New("untrusted")

// openNoSymlinks opens path without following a symlink in any
// component (openat2 RESOLVE_NO_SYMLINKS; on kernels before 5.6, only the
// last component is checked, with O_NOFOLLOW).
func openNoSymlinks(dirfd int, path string, flags int, resolve uint64) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	fd, err := unix.Openat2(dirfd, path, &unix.OpenHow{Flags: uint64(flags), Resolve: resolve | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Openat(dirfd, path, flags, 0)
	}
	return fd, err
}

// LoadTrusted opens the configuration once, without following symlinks,
// checks on that descriptor that it is a regular file on a FUSE file
// system, reads it, and checks that the real binary (and the mount, when
// set) are on the same file system. A file elsewhere (a replaced symlink,
// a FIFO that shows one content to the check and another to the read)
// is refused.
func LoadTrusted(path string) (*Config, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: guard configuration path %q is not absolute", ErrUntrusted, path)
	}
	fd, err := openNoSymlinks(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return nil, fmt.Errorf("%w: guard configuration %s: a symlink in its path", ErrUntrusted, path)
		}
		return nil, fmt.Errorf("guard configuration %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("guard configuration %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: guard configuration %s is not a regular file", ErrUntrusted, path)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return nil, fmt.Errorf("guard configuration %s: %w", path, err)
	}
	if sfs.Type != fuseMagic {
		return nil, fmt.Errorf("%w: the guard configuration %s is not on the encrypted mount", ErrUntrusted, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("guard configuration %s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("guard configuration %s: larger than %d bytes", path, maxConfigSize)
	}
	c, err := parseConfig(path, b)
	if err != nil {
		return nil, err
	}
	if err := c.sameMount(path, st.Dev); err != nil {
		return nil, err
	}
	return c, nil
}

// sameMount checks that the real binary and the mount point are on the
// file system (dev) the configuration was read from.
func (c *Config) sameMount(path string, dev uint64) error {
	check := func(what, p string, flags int) error {
		fd, err := openNoSymlinks(unix.AT_FDCWD, p, unix.O_PATH|flags, 0)
		if err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrUntrusted, what, p, err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Dev != dev {
			return fmt.Errorf("%w: the guard configuration %s is not on the encrypted mount next to %s", ErrUntrusted, path, p)
		}
		return nil
	}
	if err := check("the server binary", c.RealBinary, 0); err != nil {
		return err
	}
	if c.Mount != "" {
		if !strings.HasPrefix(path, c.Mount+"/") || !strings.HasPrefix(c.RealBinary, c.Mount+"/") {
			return fmt.Errorf("%w: the guard configuration %s and the server %s must be inside the mount %s", ErrUntrusted, path, c.RealBinary, c.Mount)
		}
		if err := check("the mount", c.Mount, unix.O_DIRECTORY); err != nil {
			return err
		}
	}
	return nil
}

// LoadConfig reads and checks a configuration without the checks of
// LoadTrusted (for tools that inspect it, never for starting a server).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("guard configuration: %w", err)
	}
	return parseConfig(path, b)
}

func parseConfig(path string, b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("guard configuration %s: %w", path, err)
	}
	if !filepath.IsAbs(c.RealBinary) {
		return nil, fmt.Errorf("guard configuration %s: real_binary must be an absolute path", path)
	}
	if c.Mount != "" && (!filepath.IsAbs(c.Mount) || filepath.Clean(c.Mount) != c.Mount) {
		return nil, fmt.Errorf("guard configuration %s: mount must be a clean absolute path", path)
	}
	if c.Pins != nil {
		for _, v := range c.Pins.Values {
			if !lookupPinnable(v.Option).value || v.Value == "" || strings.ContainsAny(v.Value, "\x00\n") {
				return nil, fmt.Errorf("guard configuration %s: %q cannot be pinned to %q", path, v.Option, v.Value)
			}
		}
	}
	return &c, nil
}

// checkDataDir checks that the pinned datadir is a directory inside the
// mount's @mysql, reached from the mount point without a symlink and
// without crossing into another mount (a bind mount over the datadir or
// one of its parents), so that the server's datadir is the hardened one
// when it starts. (Root who changes mounts between this check and the
// server's own lookup is outside what the guard can see: docs/threat-model.md.)
func (c *Config) checkDataDir() error {
	dd := c.Pins.pin("datadir")
	if dd == nil || c.Mount == "" {
		return fmt.Errorf("%w: the guard configuration pins no datadir (written by an older 'harden mysqld': undo and harden again)", ErrUntrusted)
	}
	rel, ok := strings.CutPrefix(filepath.Clean(dd.Value), c.Mount+"/")
	if !ok || !strings.HasPrefix(rel, "mysql/") {
		return fmt.Errorf("%w: the pinned datadir %s is not in @mysql of the mount %s", ErrUntrusted, dd.Value, c.Mount)
	}
	mfd, err := openNoSymlinks(unix.AT_FDCWD, c.Mount, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("%w: the mount %s: %v", ErrUntrusted, c.Mount, err)
	}
	defer unix.Close(mfd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(mfd, &sfs); err != nil || sfs.Type != fuseMagic {
		return fmt.Errorf("%w: %s is not the encrypted mount", ErrUntrusted, c.Mount)
	}
	var mst unix.Stat_t
	if err := unix.Fstat(mfd, &mst); err != nil {
		return err
	}
	fd, err := openNoSymlinks(mfd, rel, unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_XDEV)
	if err != nil {
		return fmt.Errorf("%w: the datadir %s: %v (a symlink, another mount, or missing)", ErrUntrusted, dd.Value, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != mst.Dev {
		return fmt.Errorf("%w: the datadir %s is not on the mount %s", ErrUntrusted, dd.Value, c.Mount)
	}
	return nil
}
