// Package rollback keeps, outside the store, the last generation this
// host saw of each authenticated, versioned file of a volume (the volume
// config, the rule file), so that an older copy with a valid MAC put back
// into the store is refused instead of silently reviving a removed key
// slot or a deleted rule.
//
// The state lives in a root-only directory (0700, files 0600), one JSON
// file per volume ID, written atomically under an flock. It protects
// against whoever can write the store but not this host's state
// directory; it cannot help when both are rolled back together.
//
// It knows nothing about what the files hold: callers pass a file's name
// and the generation read from it under its MAC. It must not print.
package rollback

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/atomicfile"
	"github.com/mysecure/mysecure/internal/dirs"
)

// ErrRollback: a file's generation is lower than the last one seen.
var ErrRollback = errors.New("rollback")

// ErrInsecureState: the state directory or file can be written by others,
// or belongs to another user; it is not trusted.
var ErrInsecureState = errors.New("rollback state is not root-only")

// Error describes a refused file. It wraps ErrRollback.
type Error struct {
	File       string // the file's path
	Generation uint64 // the generation the file carries (0: none)
	LastSeen   uint64 // the last generation this host saw
	State      string // the state file that holds LastSeen
}

func (e *Error) Error() string {
	return fmt.Sprintf("rollback: %s has generation %d, older than generation %d last seen on this host (%s)", e.File, e.Generation, e.LastSeen, e.State)
}

func (e *Error) Unwrap() error { return ErrRollback }

// Dir is a state directory.
type Dir struct {
	Path string
}

// state is the JSON of one volume's state file.
type state struct {
	VolumeID    string            `json:"volume_id"`
	Generations map[string]uint64 `json:"generations"`
	Updated     string            `json:"updated"`
}

// StatePath is the state file of volume id.
func (d Dir) StatePath(volumeID string) string {
	return filepath.Join(d.Path, volumeID+".json")
}

func validID(volumeID string) error {
	b, err := hex.DecodeString(volumeID)
	if err != nil || len(b) != 16 {
		return fmt.Errorf("bad volume ID %q", volumeID)
	}
	return nil
}

// Last returns the last generation seen of file name (0 when none was
// recorded, or no state exists yet).
func (d Dir) Last(volumeID, name string) (uint64, error) {
	if err := validID(volumeID); err != nil {
		return 0, err
	}
	st, err := d.read(volumeID)
	if err != nil {
		return 0, err
	}
	return st.Generations[name], nil
}

// Observe checks generation gen, read from file path (its state key is
// the base name), against the last one seen: a lower one is an *Error;
// an equal one is accepted; a higher one is accepted and recorded.
func (d Dir) Observe(volumeID, path string, gen uint64) error {
	return d.update(volumeID, path, func(last uint64) (uint64, error) {
		if gen < last {
			return 0, &Error{File: path, Generation: gen, LastSeen: last, State: d.StatePath(volumeID)}
		}
		return gen, nil
	})
}

// Accept records gen as the last generation seen of file path, lower or
// not: how an operator holding the master credential accepts a restored
// older file. It returns the generation it replaced.
func (d Dir) Accept(volumeID, path string, gen uint64) (previous uint64, err error) {
	err = d.update(volumeID, path, func(last uint64) (uint64, error) {
		previous = last
		return gen, nil
	})
	return previous, err
}

// update runs f on the last generation of path's file under an exclusive
// lock and writes what it returns when that differs.
func (d Dir) update(volumeID, path string, f func(last uint64) (uint64, error)) error {
	if err := validID(volumeID); err != nil {
		return err
	}
	if err := d.ensureDir(); err != nil {
		return err
	}
	unlock, err := d.lock(volumeID)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := d.read(volumeID)
	if err != nil {
		return err
	}
	name := filepath.Base(path)
	last, ok := st.Generations[name]
	next, err := f(last)
	if err != nil {
		return err
	}
	if ok && next == last {
		return nil
	}
	st.Generations[name] = next
	st.Updated = time.Now().UTC().Format(time.RFC3339)
	return d.write(volumeID, st)
}

// ensureDir creates the state directory 0700, or checks that an existing
// one is a directory owned by the caller that nobody else can write.
func (d Dir) ensureDir() error {
	if d.Path == "" {
		return errors.New("no rollback state directory configured")
	}
	// Parents 0755: /var/lib/mysecure also holds the mount point, which
	// the database server must reach.
	if err := dirs.MkdirAll(d.Path, 0o755, 0o700); err != nil {
		return fmt.Errorf("failed to create rollback state directory: %w", err)
	}
	return checkOwner(d.Path, true)
}

func checkOwner(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("failed to check rollback state: %w", err)
	}
	if dir && !fi.IsDir() || !dir && !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a %s", ErrInsecureState, path, map[bool]string{true: "directory", false: "regular file"}[dir])
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o (others can write it)", ErrInsecureState, path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d", ErrInsecureState, path, st.Uid)
	}
	return nil
}

func (d Dir) lock(volumeID string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(d.Path, volumeID+".lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to lock rollback state: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock rollback state: %w", err)
	}
	return func() { f.Close() }, nil
}

// read loads a volume's state; a missing file (or directory) is an empty
// state.
func (d Dir) read(volumeID string) (*state, error) {
	path := d.StatePath(volumeID)
	st := &state{VolumeID: volumeID, Generations: map[string]uint64{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read rollback state: %w", err)
	}
	if err := checkOwner(path, false); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("rollback state %s is corrupt: %w", path, err)
	}
	if st.VolumeID != volumeID {
		return nil, fmt.Errorf("rollback state %s is for volume %q", path, st.VolumeID)
	}
	if st.Generations == nil {
		st.Generations = map[string]uint64{}
	}
	return st, nil
}

// write replaces the state file atomically: temp file 0600 in the same
// directory, fsync, rename, fsync of the directory.
func (d Dir) write(volumeID string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode rollback state: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.Write(d.StatePath(volumeID), data, 0o600); err != nil {
		return fmt.Errorf("failed to write rollback state: %w", err)
	}
	return nil
}
