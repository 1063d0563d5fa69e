package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/encfs/tree"
)

// Paths inside the category.
const (
	metaDir       = ".mysecure"
	backupsDir    = ".mysecure/backups"
	credsDir      = ".mysecure/credentials"
	partialPrefix = ".partial-"
	dataName      = "data.zst"
	manifestName  = "manifest.json"
)

// Service runs backups into one category of a store.
type Service struct {
	Tree  *tree.Tree
	Tools Tools
	// LockDir holds the run locks (flock; a crashed holder releases its
	// lock). Normally STORE/ms.locks.
	LockDir string
	Log     *slog.Logger
	// SSH connects to the hosts of remote backups (nil: none).
	SSH SSHDialer
	// Remotes are the object stores backups may also (or only) go to,
	// by target name (docs/fleet.md).
	Remotes map[string]ObjectStore
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

var idRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$`)

// ValidID reports whether id has the form of a backup ID
// (20261128T103000Z-1a2b: start time in UTC and a random suffix).
func ValidID(id string) bool { return idRE.MatchString(id) }

func newID(t time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Entry is a complete backup in the catalog.
type Entry struct {
	Manifest
	// StorePath is the backup's directory in the store (what to copy for
	// an offline restore elsewhere, with mysecure.conf).
	StorePath string `json:"store_path"`
}

// List returns the complete backups, oldest first. Backups whose manifest
// does not open are returned in broken with the reason.
func (s *Service) List() (entries []Entry, broken map[string]error, err error) {
	ents, err := s.Tree.ReadDir(backupsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the catalog: %w", err)
	}
	broken = map[string]error{}
	for _, e := range ents {
		if !e.IsDir || !ValidID(e.Name) {
			continue
		}
		m, err := s.manifest(e.Name)
		if err != nil {
			broken[e.Name] = err
			continue
		}
		entries = append(entries, Entry{Manifest: *m, StorePath: e.Stored})
	}
	sort.Slice(entries, func(i, j int) bool {
		if !entries[i].Started.Equal(entries[j].Started) {
			return entries[i].Started.Before(entries[j].Started)
		}
		return entries[i].ID < entries[j].ID
	})
	return entries, broken, nil
}

func (s *Service) manifest(id string) (*Manifest, error) {
	b, err := s.Tree.ReadFile(path.Join(backupsDir, id, manifestName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: backup %s has no manifest", ErrCorrupt, id)
		}
		return nil, fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, id, err)
	}
	return parseManifest(b, id)
}

// Get returns one backup of the catalog.
func (s *Service) Get(id string) (*Entry, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: no backup %q (IDs look like 20261128T103000Z-1a2b)", ErrNotFound, id)
	}
	p, err := s.Tree.Resolve(path.Join(backupsDir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no backup %s (the catalog is empty)", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no backup %s", ErrNotFound, id)
		}
		return nil, err
	}
	m, err := s.manifest(id)
	if err != nil {
		return nil, err
	}
	return &Entry{Manifest: *m, StorePath: p}, nil
}

// Delete removes a backup from the catalog and the store.
func (s *Service) Delete(id string) error {
	if _, err := s.Get(id); err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	// Out of the catalog first (one rename), then the files.
	gone := path.Join(backupsDir, partialPrefix+"deleted-"+id)
	if err := s.Tree.Rename(path.Join(backupsDir, id), gone); err != nil {
		return fmt.Errorf("failed to delete %s: %w", id, err)
	}
	if err := s.Tree.RemoveAll(gone); err != nil {
		return fmt.Errorf("failed to remove the files of %s: %w", id, err)
	}
	s.log().Info("backup deleted", "id", id)
	return nil
}

// lock is a held flock.
type lock struct {
	f      *os.File
	remove bool // unlink the lock file on release (one-shot locks)
}

func (l *lock) release() {
	if l != nil && l.f != nil {
		if l.remove {
			os.Remove(l.f.Name())
		}
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
	}
}

// tryLock takes the lock called name without waiting.
func (s *Service) tryLock(name string) (*lock, error) {
	if s.LockDir == "" {
		return nil, errors.New("no lock directory configured")
	}
	if err := os.MkdirAll(s.LockDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.LockDir, name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return &lock{f: f}, nil
}

// cleanPartials removes what interrupted runs left (their lock is free:
// the holder is gone).
func (s *Service) cleanPartials() {
	ents, err := s.Tree.ReadDir(backupsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name, partialPrefix) {
			continue
		}
		id := strings.TrimPrefix(e.Name, partialPrefix)
		l, err := s.tryLock("run-" + id)
		if err != nil {
			continue // still running
		}
		if err := s.Tree.RemoveAll(path.Join(backupsDir, e.Name)); err == nil {
			s.log().Info("removed the partial data of an interrupted backup", "id", id)
		}
		l.remove = true
		l.release()
	}
}
