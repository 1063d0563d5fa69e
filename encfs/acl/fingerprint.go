package acl

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxCacheEntries bounds the fingerprint cache; when it is full an
	// arbitrary entry makes room.
	maxCacheEntries = 4096

	// defaultMinCacheAge: a file whose ctime is younger than this when
	// hashing starts is hashed but not cached. A later change of such a file
	// could get the very same ctime (timestamps come from a coarse clock,
	// and some filesystems keep whole seconds), so the cache key would not
	// see it. Older files cannot be changed without a new ctime.
	defaultMinCacheAge = 2 * time.Second

	// hashAttempts is how often a file that changes while being hashed is
	// hashed again before giving up.
	hashAttempts = 3
)

// fileKey identifies one version of a file's content without reading it:
// a write, truncate, chmod or utimes changes size, mtime or ctime, and
// ctime cannot be set by a user.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{
		dev:   st.Dev,
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}
}

// fingerprintCache maps file versions to their SHA-256 (hex).
type fingerprintCache struct {
	mu sync.Mutex
	m  map[fileKey]string
}

func (c *fingerprintCache) get(k fileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[k]
	return s, ok
}

func (c *fingerprintCache) put(k fileKey, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[fileKey]string)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCacheEntries {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = sum
}

// openForHash opens a file to fingerprint it, relative to dirfd (or
// unix.AT_FDCWD). O_NONBLOCK keeps a FIFO planted where a script is
// expected from blocking the caller; hashFD then refuses anything but a
// regular file.
func openForHash(dirfd int, path string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// hashFD returns the SHA-256 (lower-case hex) of the open regular file fd,
// from the cache when its (dev, ino, size, mtime, ctime) was hashed before.
// It reads with pread, so the file offset does not matter. name is for
// errors.
func (id *Identifier) hashFD(fd int, name string) (string, error) {
	sum, _, err := id.hashFDKey(fd, name)
	return sum, err
}

// hashFDKey is hashFD that also returns the file version it hashed.
func (id *Identifier) hashFDKey(fd int, name string) (string, fileKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fileKey{}, fmt.Errorf("failed to stat %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fileKey{}, fmt.Errorf("failed to fingerprint %s: not a regular file", name)
	}
	key := keyOf(&st)
	if sum, ok := id.cache.get(key); ok {
		return sum, key, nil
	}
	buf := make([]byte, 128<<10)
	for range hashAttempts {
		start := time.Now()
		h := sha256.New()
		for off := int64(0); ; {
			n, err := unix.Pread(fd, buf, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return "", fileKey{}, fmt.Errorf("failed to read %s: %w", name, err)
			}
			if n == 0 {
				break
			}
			h.Write(buf[:n])
			off += int64(n)
		}
		id.hashes.Add(1)
		sum := hex.EncodeToString(h.Sum(nil))
		if err := unix.Fstat(fd, &st); err != nil {
			return "", fileKey{}, fmt.Errorf("failed to stat %s: %w", name, err)
		}
		after := keyOf(&st)
		if after != key {
			key = after // changed while we read it: read it again
			continue
		}
		if key.ctime <= start.Add(-id.minCacheAge).UnixNano() {
			id.cache.put(key, sum)
		}
		return sum, key, nil
	}
	return "", fileKey{}, fmt.Errorf("failed to fingerprint %s: file kept changing while being hashed", name)
}

// Fingerprint returns the SHA-256 (lower-case hex) of the regular file at
// path, using the same cache as Identify. Paths that
// IdentifierOptions.HashInMount owns are hashed by it. The daemon uses it
// to fill the fingerprints of new rules (`acl add`, `acl update`).
func (id *Identifier) Fingerprint(path string) (string, error) {
	if sum, ok, err := id.hashInMount(path, nil); ok || err != nil {
		return sum, err
	}
	fd, err := openForHash(unix.AT_FDCWD, path)
	if err != nil {
		return "", fmt.Errorf("failed to open %s to fingerprint it: %w", path, err)
	}
	defer unix.Close(fd)
	return id.hashFD(fd, path)
}

// hashInMount asks IdentifierOptions.HashInMount, if set, about path.
func (id *Identifier) hashInMount(path string, st *unix.Stat_t) (string, bool, error) {
	if id.inMount == nil {
		return "", false, nil
	}
	sum, ok, err := id.inMount(path, st)
	if err != nil {
		return "", true, fmt.Errorf("failed to fingerprint %s in the mount: %w", path, err)
	}
	if !ok {
		return "", false, nil
	}
	if !sha256RE.MatchString(sum) {
		return "", true, fmt.Errorf("failed to fingerprint %s in the mount: bad SHA-256 %q", path, sum)
	}
	return sum, true, nil
}

// Hashes returns how many times a file was actually read and hashed
// (cache misses) since the Identifier was made. Hashes done by
// HashInMount are not counted.
func (id *Identifier) Hashes() uint64 { return id.hashes.Load() }

// FillRule prepares a parsed rule for storage: it resolves symbolic links
// in the paths of real executables (the program of a plain rule, the
// interpreter, the children), because /proc/PID/exe always shows the
// resolved path (on Debian, /bin/cat runs as /usr/bin/cat), and fills every
// fingerprint with Fingerprint. The script of a --shell rule keeps its
// path as written: an interpreter sees the script by the path it was
// started with. Resolving only reads links, it opens nothing.
func (id *Identifier) FillRule(r *Rule) error {
	if r == nil {
		return errors.New("failed to fill rule: no rule")
	}
	for _, p := range r.Programs() {
		if p != &r.Exe || r.Shell == nil {
			resolved, err := filepath.EvalSymlinks(p.Path)
			if err != nil {
				return fmt.Errorf("failed to resolve %s: %w", p.Path, err)
			}
			p.Path = resolved
		}
		sum, err := id.Fingerprint(p.Path)
		if err != nil {
			return err
		}
		p.SHA256 = sum
	}
	r.normalize()
	return r.Validate()
}
