package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/hint"
)

// The descriptors a detached child gets: the readiness report goes to
// ReadyFD, the credential comes on CredentialFD. The caller's Args name
// them (`--ready-fd=3 --credential-fd=4`).
const (
	ReadyFD      = 3
	CredentialFD = 4
)

// Detached is how to start the daemon in the background.
type Detached struct {
	// Exe and Args are the child's program ("": the running binary) and
	// arguments (`mount --foreground` with ReadyFD and CredentialFD).
	Exe  string
	Args []string
	// LogFile receives the child's stdout and stderr (appended to; its
	// directory is made 0750 when missing).
	LogFile string
	// Credential is handed to the child over a pipe, never argv or the
	// environment; empty when the child unlocks another way.
	Credential *Credential
}

// Failed is the child's own report of why the mount did not come up,
// with the exit code it chose.
type Failed struct{ Report Report }

func (e *Failed) Error() string { return e.Report.Error }

// StartDetached starts the daemon as a child in a new session (so that
// the caller's terminal and its signals do not reach it), with "/" as its
// directory, hands it the credential and waits for its readiness report.
// It returns the child's pid once the mount is ready; a *Failed with the
// child's report when the child says why it failed; an error wrapping
// ErrNoReport, hinted with the log file, when it exited without a report.
// The child is released, never waited for.
func StartDetached(d Detached) (int, error) {
	exe, err := executable(d.Exe)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(d.LogFile), 0o750); err != nil {
		return 0, fmt.Errorf("failed to create log dir: %w", err)
	}
	logf, err := os.OpenFile(d.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("failed to open daemon log: %w", err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer readyR.Close()
	credR, credW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return 0, err
	}
	child := exec.Command(exe, d.Args...)
	child.Dir = "/"
	child.Stdout, child.Stderr = logf, logf
	child.ExtraFiles = []*os.File{readyW, credR} // ReadyFD, CredentialFD
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = child.Start()
	readyW.Close()
	credR.Close()
	if err != nil {
		credW.Close()
		return 0, fmt.Errorf("failed to start the daemon: %w", err)
	}
	defer child.Process.Release()
	c := d.Credential
	if c == nil {
		c = &Credential{}
	}
	werr := SendCredential(credW, c)
	credW.Close()
	if werr != nil {
		return 0, fmt.Errorf("failed to hand the credential to the daemon: %w", werr)
	}
	msg, err := ReadReport(readyR)
	if err != nil {
		return 0, hint.Wrap(err, "see "+d.LogFile)
	}
	if !msg.OK {
		return 0, &Failed{Report: msg}
	}
	return child.Process.Pid, nil
}

// Recovery is how to start the child that finishes the moves a crash
// interrupted (`mysecure recover --token-fd=3`): the daemon does not
// write into its own mount.
type Recovery struct {
	Exe  string // "": the running binary
	Args []string
	// Token returns a recovery token (daemon.Daemon.NewRecoveryToken);
	// it reaches the child on descriptor 3 and is cleared here.
	Token func() ([]byte, error)
	// Logger receives the outcome and the child's output.
	Logger *slog.Logger
}

// RunRecovery runs the recovery child and waits for it, logging what
// happened; it never fails the daemon (the moves stay journaled for the
// next try). It is meant for Config.Recover.
func RunRecovery(r Recovery) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out, err := runRecovery(r)
	if err != nil {
		var started *recoveryFailed
		if errors.As(err, &started) {
			log.Error("journal recovery failed", "error", started.err.Error(), "output", string(out))
			return
		}
		log.Error("journal recovery not started", "error", err.Error())
		return
	}
	if len(out) > 0 {
		log.Info("journal recovery", "output", string(out))
	}
}

// recoveryFailed is the error of a recovery child that ran.
type recoveryFailed struct{ err error }

func (e *recoveryFailed) Error() string { return e.err.Error() }

func runRecovery(r Recovery) ([]byte, error) {
	exe, err := executable(r.Exe)
	if err != nil {
		return nil, err
	}
	token, err := r.Token()
	if err != nil {
		return nil, err
	}
	defer clear(token)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	// A token is far smaller than a pipe's buffer: written whole before
	// the child starts.
	_, err = pw.Write(token)
	pw.Close()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, r.Args...)
	cmd.ExtraFiles = []*os.File{pr}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, &recoveryFailed{err}
	}
	return out, nil
}

// AlreadyMounted decides what `mount` does when the daemon on socket
// answers with s: nothing (true) when it serves this store on this mount
// point already; an error wrapping daemon.ErrAlreadyMounted, hinted, when
// it serves another; go on (false) when nothing is mounted.
func AlreadyMounted(s daemon.Status, store, mount, socket string) (bool, error) {
	if !s.Mounted {
		return false, nil
	}
	if s.Store == store && s.Mount == mount {
		return true, nil
	}
	return false, hint.Wrap(fmt.Errorf("%w: the daemon on %s serves %s on %s", daemon.ErrAlreadyMounted, socket, s.Store, s.Mount),
		"'mysecure status' shows it; use another --socket for a second volume")
}

// Unmounted is what Unmount did.
type Unmounted int

const (
	// UnmountedDaemon: the daemon unmounted and let go of its socket.
	UnmountedDaemon Unmounted = iota
	// ClearedStale: no daemon ran, and the dead mount a daemon killed
	// with -9 left behind was detached.
	ClearedStale
)

// socketWait bounds how long Unmount waits for the daemon to let go of
// its socket (tries of socketPoll).
const (
	socketWait = 250
	socketPoll = 20 * time.Millisecond
)

// Unmount asks the daemon behind c to unmount and waits until its socket
// no longer answers. With no daemon, a stale mount on mount is cleared;
// nothing mounted is daemon.ErrNotRunning. Errors carry their hints.
func Unmount(ctx context.Context, c *daemon.Client, mount string) (Unmounted, error) {
	err := c.Umount(ctx)
	if errors.Is(err, daemon.ErrNotRunning) {
		if IsStaleMount(mount) {
			return ClearedStale, daemon.LazyUnmount(mount)
		}
		return 0, hint.Wrap(err, "nothing to unmount")
	}
	if errors.Is(err, daemon.ErrInUse) {
		return 0, hint.Wrap(err, "stop the programs using the mount (mysqld) first")
	}
	if err != nil {
		return 0, err
	}
	for i := 0; i < socketWait; i++ {
		if _, err := c.Status(ctx); errors.Is(err, daemon.ErrNotRunning) {
			break
		}
		time.Sleep(socketPoll)
	}
	return UnmountedDaemon, nil
}

// IsStaleMount reports whether dir is a mount point whose server is gone.
func IsStaleMount(dir string) bool {
	var st syscall.Stat_t
	return errors.Is(syscall.Stat(dir, &st), syscall.ENOTCONN)
}

// executable is exe, or the running binary when exe is "".
func executable(exe string) (string, error) {
	if exe != "" {
		return exe, nil
	}
	return os.Executable()
}
