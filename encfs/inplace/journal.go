package inplace

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Journal format (version 1). One JSON file per job in the journal
// directory, named <id>.json where <id> is 16 lower-case hex digits, and
// replaced atomically at every state change (write <id>.json.tmp, fsync,
// rename, fsync the directory). Fields: version, id, op ("encrypt" or
// "decrypt"), state, path, dst, created_dirs (parents of dst that encrypt
// created, top down), link_uid/link_gid (owner of the symlink at path),
// started, copied_at (RFC 3339). Unknown fields are refused.
//
// Encrypt: copying -> copied -> swapped -> (file removed).
//
//	copying   copy path to dst, fsync everything
//	copied    symlink path.mysecure-link-<id> -> dst; rename path to
//	          path.mysecure-old-<id>; rename the symlink to path
//	swapped   remove path.mysecure-old-<id>
//
// Decrypt: copying -> copied -> swapped -> (file removed).
//
//	copying   copy dst to path.mysecure-new-<id>, fsync everything
//	copied    remove the symlink at path (directories only: a file is
//	          renamed over it); rename path.mysecure-new-<id> to path
//	swapped   remove dst and its now empty parents below the category
//
// Either may pass through "rollback" when it is abandoned after it started.
const (
	journalVersion = 1
	journalExt     = ".json"
	journalTmpExt  = ".json.tmp"

	opEncrypt = "encrypt"
	opDecrypt = "decrypt"

	// stateCopying: the copy is being made; it is incomplete. The source
	// is untouched. Recovery removes the copy.
	stateCopying = "copying"
	// stateCopied: the copy is complete and fsynced; the swap may be
	// under way. Recovery completes the swap (or, if the source changed
	// since or is in use, rolls back).
	stateCopied = "copied"
	// stateSwapped: PATH is in its final form; the old side is left to
	// remove. Recovery removes it.
	stateSwapped = "swapped"
	// stateRollback: the job is being abandoned; the copy is not to be
	// trusted. Recovery restores PATH and removes the copy.
	stateRollback = "rollback"

	// Suffixes of the siblings of PATH a job creates.
	oldSuffix  = ".mysecure-old-"
	newSuffix  = ".mysecure-new-"
	linkSuffix = ".mysecure-link-"
)

var jobIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

// job is the journal record of one Encrypt or Decrypt.
type job struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Op      string `json:"op"`
	State   string `json:"state"`
	Path    string `json:"path"`
	Dst     string `json:"dst"`
	// CreatedDirs are the parents of Dst that Encrypt creates, top down;
	// a rollback removes those that are empty.
	CreatedDirs []string `json:"created_dirs,omitempty"`
	// LinkUID and LinkGID own the symlink at Path.
	LinkUID  int       `json:"link_uid"`
	LinkGID  int       `json:"link_gid"`
	Started  time.Time `json:"started"`
	CopiedAt time.Time `json:"copied_at,omitzero"`
}

// oldPath is where Encrypt parks the original tree during the swap.
func (j *job) oldPath() string { return j.Path + oldSuffix + j.ID }

// newPath is where Decrypt copies the tree back to before the swap.
func (j *job) newPath() string { return j.Path + newSuffix + j.ID }

// linkPath is where the symlink PATH -> Dst is made before it is renamed
// into place.
func (j *job) linkPath() string { return j.Path + linkSuffix + j.ID }

func newJob(op, path, dst string) (*job, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("failed to make a job id: %w", err)
	}
	return &job{
		Version: journalVersion,
		ID:      hex.EncodeToString(b[:]),
		Op:      op,
		Path:    path,
		Dst:     dst,
		Started: time.Now().UTC(),
	}, nil
}

// parseJob decodes and validates a journal file. Recovery acts on the paths
// it names (it removes trees), so it accepts only what Encrypt and Decrypt
// write.
func parseJob(data []byte) (*job, error) {
	var j job
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("failed to parse journal: %w", err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("unsupported journal version %d", j.Version)
	}
	if !jobIDRe.MatchString(j.ID) {
		return nil, fmt.Errorf("bad job id %q", j.ID)
	}
	if j.Op != opEncrypt && j.Op != opDecrypt {
		return nil, fmt.Errorf("unknown operation %q", j.Op)
	}
	if !slices.Contains([]string{stateCopying, stateCopied, stateSwapped, stateRollback}, j.State) {
		return nil, fmt.Errorf("unknown state %q", j.State)
	}
	for _, p := range []string{j.Path, j.Dst} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("bad path %q", p)
		}
	}
	if within(j.Dst, j.Path) || within(j.Path, j.Dst) {
		return nil, fmt.Errorf("path %q and destination %q overlap", j.Path, j.Dst)
	}
	for _, d := range j.CreatedDirs {
		if filepath.Clean(d) != d || d == "/" || !within(j.Dst, d) || d == j.Dst {
			return nil, fmt.Errorf("bad created directory %q", d)
		}
	}
	return &j, nil
}

// writeJournal replaces the job's journal file atomically and durably.
func writeJournal(dir string, j *job) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode journal: %w", err)
	}
	data = append(data, '\n')
	name := filepath.Join(dir, j.ID+journalExt)
	tmp := filepath.Join(dir, j.ID+journalTmpExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("failed to write journal: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to write journal %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to sync journal %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to write journal %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to write journal: %w", err)
	}
	if err := fsyncDir(dir); err != nil {
		return fmt.Errorf("failed to write journal: %w", err)
	}
	return nil
}

// removeJournal ends a job.
func removeJournal(dir string, j *job) error {
	if err := os.Remove(filepath.Join(dir, j.ID+journalExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove journal: %w", err)
	}
	if err := fsyncDir(dir); err != nil {
		return fmt.Errorf("failed to remove journal: %w", err)
	}
	return nil
}

// loadJobs reads every journal file in dir, oldest job first. Temp files
// left by a crash while a journal was being written are removed: the job
// they belong to had either not started (its first state was being
// written) or still has its previous journal file. A journal that cannot
// be read is reported and kept.
func loadJobs(dir string, log *slog.Logger) ([]*job, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("failed to read journal directory: %w", err)}
	}
	var jobs []*job
	var errs []error
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, journalTmpExt):
			if err := os.Remove(full); err != nil {
				errs = append(errs, fmt.Errorf("failed to remove stale journal temp file: %w", err))
			} else {
				log.Info("recover: removed an unfinished journal write", "file", full)
			}
		case strings.HasSuffix(name, journalExt):
			data, err := os.ReadFile(full)
			if err != nil {
				errs = append(errs, fmt.Errorf("failed to read journal: %w", err))
				continue
			}
			j, err := parseJob(data)
			if err == nil && j.ID+journalExt != name {
				err = fmt.Errorf("journal file name does not match job id %q", j.ID)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("journal %s: %w", full, err))
				continue
			}
			jobs = append(jobs, j)
		}
	}
	slices.SortFunc(jobs, func(a, b *job) int { return a.Started.Compare(b.Started) })
	return jobs, errs
}

// pendingJobFor returns a pending job whose PATH overlaps path, if any.
func pendingJobFor(dir, path string) (*job, error) {
	jobs, errs := loadJobs(dir, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, j := range jobs {
		if within(path, j.Path) || within(j.Path, path) {
			return j, nil
		}
	}
	return nil, nil
}

// ensureJournalDir creates the journal directory (0700) if needed and
// checks that nobody but its owner (us) can plant journal files in it:
// recovery trusts them.
func ensureJournalDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create journal directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("failed to stat journal directory %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("journal directory %s is not a directory", dir)
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("journal directory %s must be owned by uid %d and not writable by group or others (mode %04o, uid %d)",
			dir, os.Geteuid(), st.Mode&0o7777, st.Uid)
	}
	return nil
}

// lockJournal takes an exclusive, non-blocking flock on the journal
// directory itself, so that no lock file is left behind. It returns the
// unlock function.
func lockJournal(dir string) (func(), error) {
	if err := ensureJournalDir(dir); err != nil {
		return nil, err
	}
	fd, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open journal directory %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (journal directory %s is locked)", ErrBusy, dir)
		}
		return nil, fmt.Errorf("failed to lock journal directory %s: %w", dir, err)
	}
	// LOCK_UN before close: a child forked meanwhile (and not yet exec'd)
	// shares the open file description, and would keep the lock alive.
	return func() {
		_ = unix.Flock(fd, unix.LOCK_UN)
		_ = unix.Close(fd)
	}, nil
}
