// Package inplace moves a file or a directory tree into the encrypted mount
// and leaves a symlink in its place ("encrypt in place"), and reverses it
// ("decrypt in place"). Every byte, owner, mode, time, extended attribute,
// hard link and symlink inside the tree is kept.
//
// Both directions are crash safe. Each job is recorded in a journal file
// before anything is touched and the journal follows each step; Recover reads
// the journal and either completes an interrupted job or rolls it back, so
// that PATH ends up either as the original tree or as a symlink to a complete
// copy, never as a half of either.
//
// The package works on plain filesystem paths only: it knows nothing about
// keys, categories or rules, and the caller computes the destination. It must
// not print, prompt, exit or panic, and it must never remove the last
// complete copy of the data: a source is removed only after its copy is
// complete, fsynced, checked against the source and the swap is journaled.
// It refuses (before touching anything) whatever it cannot move faithfully:
// special files, mount points, files open in other processes, hard links
// that leave the tree.
package inplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Options configures Encrypt, Decrypt and Recover.
type Options struct {
	// JournalDir holds one journal file per job. It is created with mode
	// 0700 if missing and must not be writable by group or others.
	// Required.
	JournalDir string
	// MountDir is the encrypted mount point. PATH must not be inside it.
	// When set, it must be mounted (listed in /proc/self/mountinfo), lest
	// an "encrypted" copy land in plaintext in the empty directory under
	// it, and the destination of Encrypt and Decrypt must be inside it.
	MountDir string
	// StoreDir is the ciphertext store. Neither PATH nor the destination
	// may be inside it.
	StoreDir string
	// Force moves PATH even if a process has a file under it open. A file
	// that changes during the copy still aborts the job.
	Force bool
	// Logger receives progress and recovery messages. Optional.
	Logger *slog.Logger
}

// Sentinel errors callers branch on (the CLI maps them to exit codes).
var (
	// ErrAlreadyEncrypted: PATH is a symlink into MountDir.
	ErrAlreadyEncrypted = errors.New("already encrypted")

	// ErrNotEncrypted: Decrypt was asked for a PATH that is not a symlink
	// to the expected destination.
	ErrNotEncrypted = errors.New("not encrypted")

	// ErrInUse: a process has a file under PATH open (see InUseError), or
	// a file changed while it was being copied.
	ErrInUse = errors.New("in use")

	// ErrRefused: the job cannot be done safely as asked (PATH relative,
	// "/", inside the mount or the store, a mount point, holding special
	// files, the destination exists, not enough space ...). Nothing was
	// touched.
	ErrRefused = errors.New("refused")

	// ErrBusy: another Encrypt, Decrypt or Recover holds the journal
	// directory's lock.
	ErrBusy = errors.New("another encrypt/decrypt job is running")
)

// InUseError says which process holds a file under PATH. It matches
// ErrInUse with errors.Is.
type InUseError struct {
	// Path is the open file or working directory, under PATH.
	Path string
	// PID and Command (from /proc/PID/comm) identify the process.
	PID     int
	Command string
	// Cwd is true when Path is the process's working directory rather
	// than an open file.
	Cwd bool
	// More counts further open files or processes that were found.
	More int
}

// Error implements error.
func (e *InUseError) Error() string {
	how := "is open by"
	if e.Cwd {
		how = "is the working directory of"
	}
	s := fmt.Sprintf("in use: %s %s pid %d (%s)", e.Path, how, e.PID, e.Command)
	if e.More > 0 {
		s += fmt.Sprintf(", and %d more", e.More)
	}
	return s + "; stop it first, or use --force"
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// testHookStep, when set (by tests only), is called after each state change
// or step of a job, with names such as "encrypt:copied".
var testHookStep func(step string)

func step(name string) {
	if testHookStep != nil {
		testHookStep(name)
	}
}

// Encrypt moves PATH (a regular file or a directory tree) to dst and leaves
// a symlink PATH -> dst, owned like PATH was. dst must not exist; missing
// parent directories of dst are created (with the mode and owner of the
// matching parent of PATH when dst ends in PATH, as <mount>/<cat>/<PATH>
// does). Everything is checked before anything is touched; once the job has
// started, an error rolls it back, and a crash is completed or rolled back
// by Recover.
func Encrypt(ctx context.Context, path, dst string, o Options) error {
	o, err := o.normalize()
	if err != nil {
		return fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	if err := checkJournalOutside(o.JournalDir, path, dst); err != nil {
		return err
	}
	unlock, err := lockJournal(o.JournalDir)
	if err != nil {
		return fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	defer unlock()

	pf, err := preflightEncrypt(ctx, path, dst, o)
	if err != nil {
		return err
	}
	j, err := newJob(opEncrypt, path, dst)
	if err != nil {
		return fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	j.CreatedDirs = pf.missingParents
	j.LinkUID, j.LinkGID = pf.uid, pf.gid
	log := o.Logger.With("job", j.ID, "op", "encrypt", "path", path, "dst", dst)
	log.Info("encrypt: starting", "entries", pf.tree.entries, "bytes", pf.tree.bytes)

	j.State = stateCopying
	if err := writeJournal(o.JournalDir, j); err != nil {
		return fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	step("encrypt:copying")

	if err := makeParents(pf.missingParents, pf.parentModel); err != nil {
		return abort(j, o, fmt.Errorf("failed to encrypt %s: %w", path, err))
	}
	if err := copyAll(ctx, path, dst, "encrypt:copy-partial", pf.tree, log); err != nil {
		return abort(j, o, fmt.Errorf("failed to encrypt %s: %w", path, err))
	}
	step("encrypt:copy-done")

	j.State = stateCopied
	j.CopiedAt = time.Now().UTC()
	if err := writeJournal(o.JournalDir, j); err != nil {
		return abort(j, o, fmt.Errorf("failed to encrypt %s: %w", path, err))
	}
	step("encrypt:copied")

	out, err := completeEncrypt(ctx, j, o, "")
	if err != nil {
		return err
	}
	if out.cause != nil {
		log.Info(out.line)
		return out.cause
	}
	log.Info("encrypt: done")
	return nil
}

// Decrypt copies dst back to PATH, replacing the symlink PATH -> dst, and
// then removes dst (and the parent directories of dst that Encrypt created
// and that are now empty). PATH must be a symlink whose target is dst
// (ErrNotEncrypted otherwise). Like Encrypt, it checks everything first,
// rolls back on error and is recoverable after a crash.
func Decrypt(ctx context.Context, path, dst string, o Options) error {
	o, err := o.normalize()
	if err != nil {
		return fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	if err := checkJournalOutside(o.JournalDir, path, dst); err != nil {
		return err
	}
	unlock, err := lockJournal(o.JournalDir)
	if err != nil {
		return fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	defer unlock()

	pf, err := preflightDecrypt(ctx, path, dst, o)
	if err != nil {
		return err
	}
	j, err := newJob(opDecrypt, path, dst)
	if err != nil {
		return fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	j.LinkUID, j.LinkGID = pf.uid, pf.gid
	log := o.Logger.With("job", j.ID, "op", "decrypt", "path", path, "dst", dst)
	log.Info("decrypt: starting", "entries", pf.tree.entries, "bytes", pf.tree.bytes)

	j.State = stateCopying
	if err := writeJournal(o.JournalDir, j); err != nil {
		return fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	step("decrypt:copying")

	if err := copyAll(ctx, dst, j.newPath(), "decrypt:copy-partial", pf.tree, log); err != nil {
		return abort(j, o, fmt.Errorf("failed to decrypt %s: %w", path, err))
	}
	step("decrypt:copy-done")

	j.State = stateCopied
	j.CopiedAt = time.Now().UTC()
	if err := writeJournal(o.JournalDir, j); err != nil {
		return abort(j, o, fmt.Errorf("failed to decrypt %s: %w", path, err))
	}
	step("decrypt:copied")

	out, err := completeDecrypt(ctx, j, o, "")
	if err != nil {
		return err
	}
	if out.cause != nil {
		log.Info(out.line)
		return out.cause
	}
	log.Info("decrypt: done")
	return nil
}

// Recover completes or rolls back every interrupted job found in
// o.JournalDir and returns one line per job handled, such as
// "rolled back encrypt of /var/lib/mysqlbackup (copy was incomplete)".
// A job that cannot be settled keeps its journal file and is reported in
// the returned error; the other jobs are still handled. Call it with the
// encrypted mount up, at daemon start and before each Encrypt or Decrypt.
func Recover(o Options) ([]string, error) {
	o, err := o.normalize()
	if err != nil {
		return nil, fmt.Errorf("failed to recover: %w", err)
	}
	unlock, err := lockJournal(o.JournalDir)
	if err != nil {
		return nil, fmt.Errorf("failed to recover: %w", err)
	}
	defer unlock()

	jobs, errs := loadJobs(o.JournalDir, o.Logger)
	if len(jobs) > 0 {
		if err := checkMounted(o.MountDir); err != nil {
			return nil, fmt.Errorf("failed to recover %d interrupted jobs: %w", len(jobs), err)
		}
	}
	var lines []string
	for _, j := range jobs {
		line, err := recoverJob(context.Background(), j, o)
		if line != "" {
			lines = append(lines, line)
			o.Logger.Info("recover: "+line, "job", j.ID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to recover %s of %s (journal %s): %w",
				j.Op, j.Path, filepath.Join(o.JournalDir, j.ID+journalExt), err))
		}
	}
	return lines, errors.Join(errs...)
}

func (o Options) normalize() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.JournalDir == "" {
		return o, errors.New("no journal directory given")
	}
	for _, d := range []*string{&o.JournalDir, &o.MountDir, &o.StoreDir} {
		if *d == "" {
			continue
		}
		if !filepath.IsAbs(*d) {
			return o, fmt.Errorf("%q is not an absolute path", *d)
		}
		*d = filepath.Clean(*d)
	}
	return o, nil
}
