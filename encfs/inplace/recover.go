package inplace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The functions here settle a job from its journal state and from what is
// actually on disk, so that each is safe to run again after a crash in the
// middle of it. Encrypt and Decrypt use them too, for their last steps and
// for rolling back, so there is one implementation of each transition.
//
// What is never done: removing the original before PATH is a symlink to an
// existing copy (encrypt), removing the encrypted copy before PATH is a real
// tree again (decrypt), removing a copy while PATH is not the original, or
// removing anything at PATH that is not a symlink we made.

// outcome is how a job was settled.
type outcome struct {
	line  string // for Recover's report
	cause error  // non-nil when the job was rolled back because of it
}

// recoverJob settles one interrupted job and removes its journal.
func recoverJob(ctx context.Context, j *job, o Options) (string, error) {
	if o.MountDir != "" && !within(j.Dst, o.MountDir) && !within(resolveExisting(j.Dst), realDir(o.MountDir)) {
		return "", fmt.Errorf("its destination %s is not inside the encrypted mount %s; not touching it", j.Dst, o.MountDir)
	}
	var out outcome
	var err error
	switch j.Op {
	case opEncrypt:
		out, err = recoverEncrypt(ctx, j, o)
	case opDecrypt:
		out, err = recoverDecrypt(ctx, j, o)
	default:
		err = fmt.Errorf("unknown operation %q", j.Op)
	}
	return out.line, err
}

// abort rolls back a job that failed in Encrypt or Decrypt and returns the
// error to report: the cause, plus the rollback's failure if any (the
// journal is then kept for Recover).
func abort(j *job, o Options, cause error) error {
	out, err := abortJob(j, o, cause)
	if err != nil {
		return err
	}
	o.Logger.Info(out.line, "job", j.ID)
	return cause
}

// abortJob marks the job as rolling back and rolls it back.
func abortJob(j *job, o Options, cause error) (outcome, error) {
	j.State = stateRollback
	if err := writeJournal(o.JournalDir, j); err != nil {
		// Go on: with the old state on disk, recovery either rolls back
		// too (copying) or finds the copy incomplete and rolls back
		// (copied: verifyCopy fails on a partly removed copy).
		o.Logger.Warn("failed to journal the rollback", "job", j.ID, "err", err)
	}
	var out outcome
	var err error
	if j.Op == opEncrypt {
		out, err = rollbackEncrypt(j, o, cause.Error())
	} else {
		out, err = rollbackDecrypt(j, o, cause.Error())
	}
	if err != nil {
		return outcome{}, errors.Join(cause, fmt.Errorf("rolling back failed, the journal is kept for recovery: %w", err))
	}
	out.cause = cause
	return out, nil
}

// quiet checks, right before a swap, that nobody holds the source open
// (unless Force) and that it still matches the copy.
func quiet(ctx context.Context, src, dst string, roots []string, o Options) error {
	if !o.Force {
		if err := checkInUse(roots); err != nil {
			return err
		}
	}
	return verifyCopy(ctx, src, dst)
}

// ---- encrypt

func recoverEncrypt(ctx context.Context, j *job, o Options) (outcome, error) {
	switch j.State {
	case stateCopying:
		return rollbackEncrypt(j, o, "copy was incomplete")
	case stateRollback:
		return rollbackEncrypt(j, o, "it was being rolled back")
	case stateSwapped:
		if err := finishEncrypt(j, o); err != nil {
			return outcome{}, err
		}
		return outcome{line: fmt.Sprintf("completed encrypt of %s (removed the plaintext original)", j.Path)}, nil
	case stateCopied:
		ps, err := classify(j.Path, j.Dst)
		if err != nil {
			return outcome{}, err
		}
		oldOK, err := exists(j.oldPath())
		if err != nil {
			return outcome{}, err
		}
		switch {
		case ps == psReal && !oldOK:
			out, err := completeEncrypt(ctx, j, o, "copy was complete")
			if out.cause != nil {
				out.line = fmt.Sprintf("rolled back encrypt of %s (copy was complete, but %v)", j.Path, out.cause)
			}
			return out, err
		case ps == psMissing || ps == psLinkToDst:
			// Interrupted in the middle of the swap: the copy is complete
			// and the original was already moved aside.
			if err := swapEncrypt(j, o); err != nil {
				return outcome{}, err
			}
			if err := finishEncrypt(j, o); err != nil {
				return outcome{}, err
			}
			return outcome{line: fmt.Sprintf("completed encrypt of %s (the swap was interrupted)", j.Path)}, nil
		default:
			return outcome{}, fmt.Errorf("cannot settle: %s is %s and %s exists=%v; fix by hand, then remove the journal file",
				j.Path, ps, j.oldPath(), oldOK)
		}
	}
	return outcome{}, fmt.Errorf("unknown state %q", j.State)
}

// completeEncrypt does the swap of a job whose copy is complete and whose
// PATH is still the original, or rolls it back if the source is in use or
// changed since it was copied.
func completeEncrypt(ctx context.Context, j *job, o Options, why string) (outcome, error) {
	if cause := quiet(ctx, j.Path, j.Dst, []string{j.Path, realPath(j.Path)}, o); cause != nil {
		return abortJob(j, o, cause)
	}
	if err := swapEncrypt(j, o); err != nil {
		return abortJob(j, o, fmt.Errorf("failed to put the symlink in place: %w", err))
	}
	if err := finishEncrypt(j, o); err != nil {
		return outcome{}, fmt.Errorf("%s is encrypted, but the plaintext original %s was not removed yet (recovery will retry): %w",
			j.Path, j.oldPath(), err)
	}
	return outcome{line: fmt.Sprintf("completed encrypt of %s (%s)", j.Path, why)}, nil
}

// swapEncrypt replaces PATH by the symlink PATH -> Dst: the symlink is made
// next to PATH, PATH is renamed aside to PATH.mysecure-old-<id>, and the
// symlink is renamed to PATH. It carries on from wherever a crash left it,
// and ends by journaling "swapped".
func swapEncrypt(j *job, o Options) error {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return err
	}
	if ps == psReal {
		if ok, err := exists(j.oldPath()); err != nil || ok {
			return errors.Join(err, fmt.Errorf("%s already exists", j.oldPath()))
		}
		if err := makeLink(j.linkPath(), j.Dst, j.LinkUID, j.LinkGID); err != nil {
			return err
		}
		step("encrypt:link-created")
		if err := renameDurable(j.Path, j.oldPath()); err != nil {
			return fmt.Errorf("failed to move the original aside: %w", err)
		}
		step("encrypt:old-moved")
		ps = psMissing
	}
	if ps == psMissing {
		if _, err := os.Lstat(j.Dst); err != nil {
			return fmt.Errorf("the encrypted copy is missing (is the volume mounted?): %w", err)
		}
		if t, err := linkTarget(j.linkPath()); err != nil || t != j.Dst {
			if err := makeLink(j.linkPath(), j.Dst, j.LinkUID, j.LinkGID); err != nil {
				return err
			}
		}
		if err := renameDurable(j.linkPath(), j.Path); err != nil {
			return fmt.Errorf("failed to put the symlink in place: %w", err)
		}
		step("encrypt:linked")
		ps = psLinkToDst
	}
	if ps != psLinkToDst {
		return fmt.Errorf("%s is %s", j.Path, ps)
	}
	j.State = stateSwapped
	if err := writeJournal(o.JournalDir, j); err != nil {
		return err
	}
	step("encrypt:swapped")
	return nil
}

// finishEncrypt removes the original, once PATH is the symlink to an
// existing copy, and ends the job.
func finishEncrypt(j *job, o Options) error {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return err
	}
	if ps != psLinkToDst {
		return fmt.Errorf("not removing the original %s: %s is %s", j.oldPath(), j.Path, ps)
	}
	if _, err := os.Lstat(j.Dst); err != nil {
		return fmt.Errorf("not removing the original %s: the encrypted copy is missing (is the volume mounted?): %w", j.oldPath(), err)
	}
	if err := removeTreeDurable(j.oldPath()); err != nil {
		return fmt.Errorf("failed to remove the original: %w", err)
	}
	step("encrypt:old-removed")
	if err := removeSymlink(j.linkPath()); err != nil {
		return err
	}
	if err := removeJournal(o.JournalDir, j); err != nil {
		return err
	}
	step("encrypt:done")
	return nil
}

// rollbackEncrypt puts the original back at PATH if it was moved aside,
// then removes the copy, the parents of Dst the job created, and the
// journal.
func rollbackEncrypt(j *job, o Options, reason string) (outcome, error) {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return outcome{}, err
	}
	oldOK, err := exists(j.oldPath())
	if err != nil {
		return outcome{}, err
	}
	if oldOK {
		switch ps {
		case psLinkToDst:
			if err := removeSymlink(j.Path); err != nil {
				return outcome{}, err
			}
			fallthrough
		case psMissing:
			if err := renameDurable(j.oldPath(), j.Path); err != nil {
				return outcome{}, fmt.Errorf("failed to move the original back: %w", err)
			}
		default:
			return outcome{}, fmt.Errorf("cannot roll back: both %s (%s) and %s exist", j.Path, ps, j.oldPath())
		}
		ps = psReal
	}
	if ps != psReal {
		return outcome{}, fmt.Errorf("cannot roll back: %s is %s and the original is not at %s; the copy %s is kept",
			j.Path, ps, j.oldPath(), j.Dst)
	}
	if err := removeSymlink(j.linkPath()); err != nil {
		return outcome{}, err
	}
	if err := removeTreeDurable(j.Dst); err != nil {
		return outcome{}, fmt.Errorf("failed to remove the partial copy: %w", err)
	}
	for i := len(j.CreatedDirs) - 1; i >= 0; i-- {
		if os.Remove(j.CreatedDirs[i]) == nil {
			_ = fsyncDir(filepath.Dir(j.CreatedDirs[i]))
		}
	}
	if err := removeJournal(o.JournalDir, j); err != nil {
		return outcome{}, err
	}
	return outcome{line: fmt.Sprintf("rolled back encrypt of %s (%s)", j.Path, reason)}, nil
}

// ---- decrypt

func recoverDecrypt(ctx context.Context, j *job, o Options) (outcome, error) {
	switch j.State {
	case stateCopying:
		return rollbackDecrypt(j, o, "copy was incomplete")
	case stateRollback:
		return rollbackDecrypt(j, o, "it was being rolled back")
	case stateSwapped:
		if err := finishDecrypt(j, o); err != nil {
			return outcome{}, err
		}
		return outcome{line: fmt.Sprintf("completed decrypt of %s (removed the encrypted copy)", j.Path)}, nil
	case stateCopied:
		ps, err := classify(j.Path, j.Dst)
		if err != nil {
			return outcome{}, err
		}
		newOK, err := exists(j.newPath())
		if err != nil {
			return outcome{}, err
		}
		switch {
		case ps == psLinkToDst && newOK:
			out, err := completeDecrypt(ctx, j, o, "copy was complete")
			if out.cause != nil {
				out.line = fmt.Sprintf("rolled back decrypt of %s (copy was complete, but %v)", j.Path, out.cause)
			}
			return out, err
		case ps == psLinkToDst:
			return rollbackDecrypt(j, o, "the copy was missing")
		case ps == psMissing && newOK, ps == psReal && !newOK:
			if err := swapDecrypt(j, o); err != nil {
				return outcome{}, err
			}
			if err := finishDecrypt(j, o); err != nil {
				return outcome{}, err
			}
			return outcome{line: fmt.Sprintf("completed decrypt of %s (the swap was interrupted)", j.Path)}, nil
		default:
			return outcome{}, fmt.Errorf("cannot settle: %s is %s and %s exists=%v; fix by hand, then remove the journal file",
				j.Path, ps, j.newPath(), newOK)
		}
	}
	return outcome{}, fmt.Errorf("unknown state %q", j.State)
}

// completeDecrypt does the swap of a job whose copy is complete and whose
// PATH is still the symlink, or rolls it back if the encrypted tree is in
// use or changed since it was copied.
func completeDecrypt(ctx context.Context, j *job, o Options, why string) (outcome, error) {
	roots := []string{j.Dst, realPath(j.Dst), j.Path, realPath(j.Path)}
	if cause := quiet(ctx, j.Dst, j.newPath(), roots, o); cause != nil {
		return abortJob(j, o, cause)
	}
	if err := swapDecrypt(j, o); err != nil {
		return abortJob(j, o, fmt.Errorf("failed to put the decrypted copy in place: %w", err))
	}
	if err := finishDecrypt(j, o); err != nil {
		return outcome{}, fmt.Errorf("%s is decrypted, but the encrypted copy %s was not removed yet (recovery will retry): %w",
			j.Path, j.Dst, err)
	}
	return outcome{line: fmt.Sprintf("completed decrypt of %s (%s)", j.Path, why)}, nil
}

// swapDecrypt replaces the symlink at PATH by the copy at
// PATH.mysecure-new-<id>: a file is renamed over the symlink atomically; a
// directory cannot replace a symlink by rename, so the symlink is removed
// first. It carries on from wherever a crash left it, and ends by
// journaling "swapped".
func swapDecrypt(j *job, o Options) error {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(j.newPath())
	newOK := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if ps == psLinkToDst {
		if !newOK {
			return fmt.Errorf("the decrypted copy %s is missing", j.newPath())
		}
		if fi.IsDir() {
			if err := removeSymlink(j.Path); err != nil {
				return fmt.Errorf("failed to remove the symlink: %w", err)
			}
			step("decrypt:unlinked")
			ps = psMissing
		} else {
			if err := renameDurable(j.newPath(), j.Path); err != nil {
				return fmt.Errorf("failed to move the decrypted copy in place: %w", err)
			}
			step("decrypt:renamed")
			ps, newOK = psReal, false
		}
	}
	if ps == psMissing {
		if !newOK {
			return fmt.Errorf("the decrypted copy %s is missing", j.newPath())
		}
		if err := renameDurable(j.newPath(), j.Path); err != nil {
			return fmt.Errorf("failed to move the decrypted copy in place: %w", err)
		}
		step("decrypt:renamed")
		ps, newOK = psReal, false
	}
	if ps != psReal || newOK {
		return fmt.Errorf("%s is %s and %s exists=%v", j.Path, ps, j.newPath(), newOK)
	}
	j.State = stateSwapped
	if err := writeJournal(o.JournalDir, j); err != nil {
		return err
	}
	step("decrypt:swapped")
	return nil
}

// finishDecrypt removes the encrypted copy, once PATH is the decrypted
// tree, and the parents of Dst that are now empty, and ends the job.
func finishDecrypt(j *job, o Options) error {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return err
	}
	if ps != psReal {
		return fmt.Errorf("not removing the encrypted copy %s: %s is %s", j.Dst, j.Path, ps)
	}
	if ok, err := exists(j.newPath()); err != nil || ok {
		return errors.Join(err, fmt.Errorf("not removing the encrypted copy %s: %s still exists", j.Dst, j.newPath()))
	}
	if err := removeTreeDurable(j.Dst); err != nil {
		return fmt.Errorf("failed to remove the encrypted copy: %w", err)
	}
	step("decrypt:dst-removed")
	removeEmptyParents(j.Dst, j.Path)
	if err := removeSymlink(j.linkPath()); err != nil {
		return err
	}
	if err := removeJournal(o.JournalDir, j); err != nil {
		return err
	}
	step("decrypt:done")
	return nil
}

// rollbackDecrypt puts the symlink back at PATH if it is gone, then removes
// the partial decrypted copy and the journal.
func rollbackDecrypt(j *job, o Options, reason string) (outcome, error) {
	ps, err := classify(j.Path, j.Dst)
	if err != nil {
		return outcome{}, err
	}
	newOK, err := exists(j.newPath())
	if err != nil {
		return outcome{}, err
	}
	if _, err := os.Lstat(j.Dst); err != nil {
		return outcome{}, fmt.Errorf("cannot roll back: the encrypted copy is missing (is the volume mounted?): %w", err)
	}
	if ps == psReal && !newOK && j.State == stateRollback {
		// The copy was renamed into place but "swapped" could not be
		// journaled: move it aside again.
		if err := renameDurable(j.Path, j.newPath()); err != nil {
			return outcome{}, err
		}
		ps, newOK = psMissing, true
	}
	if ps == psMissing {
		if err := makeLink(j.linkPath(), j.Dst, j.LinkUID, j.LinkGID); err != nil {
			return outcome{}, err
		}
		if err := renameDurable(j.linkPath(), j.Path); err != nil {
			return outcome{}, fmt.Errorf("failed to put the symlink back: %w", err)
		}
		ps = psLinkToDst
	}
	if ps != psLinkToDst {
		return outcome{}, fmt.Errorf("cannot roll back: %s is %s", j.Path, ps)
	}
	if newOK {
		if err := removeTreeDurable(j.newPath()); err != nil {
			return outcome{}, fmt.Errorf("failed to remove the partial copy: %w", err)
		}
	}
	if err := removeSymlink(j.linkPath()); err != nil {
		return outcome{}, err
	}
	if err := removeJournal(o.JournalDir, j); err != nil {
		return outcome{}, err
	}
	return outcome{line: fmt.Sprintf("rolled back decrypt of %s (%s)", j.Path, reason)}, nil
}

// removeEmptyParents removes the parents of dst that Encrypt created when
// dst is <mount>/<category><path>: those below the category directory that
// are now empty, bottom up.
func removeEmptyParents(dst, path string) {
	if !strings.HasSuffix(dst, path) || len(dst) <= len(path) {
		return
	}
	catRoot := dst[:len(dst)-len(path)]
	for d := filepath.Dir(dst); d != catRoot && within(d, catRoot); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
		_ = fsyncDir(filepath.Dir(d))
	}
}
