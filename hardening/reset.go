package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// The reset of a password on a hardened server (`harden
// reset-root-password`): stop the server, start the real binary once with
// an init file that runs SET PASSWORD, stop it, and start the server again
// the way it was started. The procedure never leaves the server down: on
// any failure after the stop it starts the server again as before, and the
// error says so (ResetError).

// Server is the database server the reset stops and starts again. The
// procedure calls Stop once; after a successful Stop it always calls Start
// (on success and on failure), and between the two StartOnce at most once.
type Server interface {
	// Stop shuts the running server down cleanly and returns once it is
	// gone (nil when it was not running).
	Stop(ctx context.Context) error
	// StartOnce starts the real server binary with the server's options
	// plus args (the init file, --skip-networking) and returns at once.
	StartOnce(ctx context.Context, args []string) (Process, error)
	// Start starts the server again the way it was started before Stop,
	// and returns once it runs.
	Start(ctx context.Context) error
	// HowToStart says how to start the server by hand, for an error
	// message when Start failed.
	HowToStart() string
}

// Process is the server binary started once by StartOnce.
type Process interface {
	// Exited is closed when the process has ended.
	Exited() <-chan struct{}
	// Stop shuts it down cleanly (SIGTERM) and waits.
	Stop(ctx context.Context) error
	// Log is what it logged (its error log of this run).
	Log() string
}

// ResetRequest is one password reset.
type ResetRequest struct {
	Account, Host string
	// Password is the new password; the caller clears it afterwards.
	Password []byte
	// InitDir is the parent of the private directory that holds the
	// init FIFO (default /run). The server's uid must be able to reach it.
	InitDir string
	// UID and GID run the server: only they may read the init FIFO.
	UID, GID int
	// ReadTimeout bounds the wait for the server to read the init file
	// (default 3 minutes).
	ReadTimeout time.Duration
	// Notice reports progress (nil: quiet).
	Notice func(string)
	// BeforeRestart, when set, runs before the server starts again
	// (HostReset removes its temporary rule there).
	BeforeRestart func()
}

// DefaultInitDir is the parent of the init FIFO's private directory:
// root's, 0755, on tmpfs. Not /run/mysecure, which is 0700: the server,
// running as mysql, could not reach a file below it.
const DefaultInitDir = "/run"

// ResetError is a failure after the server was stopped: the error, and
// whether the server was started again as before.
type ResetError struct {
	Err error
	// Restarted: the server runs again as it was started before.
	Restarted bool
	// RestartErr is why it could not be started again.
	RestartErr error
	// HowToStart says how to start it by hand when Restarted is false.
	HowToStart string
}

func (e *ResetError) Error() string {
	if e.Restarted {
		return fmt.Sprintf("%v; the password was not changed, the server was started again as before", e.Err)
	}
	return fmt.Sprintf("%v; the server could not be started again (%v): start it by hand: %s", e.Err, e.RestartErr, e.HowToStart)
}

func (e *ResetError) Unwrap() error { return e.Err }

// ErrInitFailed: the server read the init file but the statement failed
// (no such account, for example).
var ErrInitFailed = errors.New("SET PASSWORD failed")

// ErrInitDir: the server user could not read an init file in InitDir.
var ErrInitDir = errors.New("the init file's directory is out of the server's reach")

// SQLString quotes s as a MySQL string literal.
func SQLString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// initErrorLine is how the server reports a failed statement of its init
// file ("ERROR: 1133  Can't find any matching row in the user table").
var initErrorLine = regexp.MustCompile(`(?m)^ERROR: \d+ .*$`)

// ResetPassword runs the reset on srv. srv may be a server that is not
// running (Stop returns nil and Start starts nothing).
func ResetPassword(ctx context.Context, srv Server, r ResetRequest) (err error) {
	notice := r.Notice
	if notice == nil {
		notice = func(string) {}
	}
	if r.ReadTimeout == 0 {
		r.ReadTimeout = 3 * time.Minute
	}
	// Everything that can be checked is checked before the stop.
	init, err := newInitFIFO(r.InitDir, r.UID, r.GID)
	if err != nil {
		return err
	}
	defer init.remove()

	notice("stopping the server")
	if err := srv.Stop(ctx); err != nil {
		return fmt.Errorf("could not stop the server: %w", err)
	}
	// From here on, the server is started again whatever happens.
	defer func() {
		// The restart must not die with an interrupted reset.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if r.BeforeRestart != nil {
			r.BeforeRestart()
		}
		serr := srv.Start(sctx)
		switch {
		case err != nil && serr == nil:
			notice("server started again as before")
			err = &ResetError{Err: err, Restarted: true}
		case err != nil:
			err = &ResetError{Err: err, RestartErr: serr, HowToStart: srv.HowToStart()}
		case serr != nil:
			err = &ResetError{Err: errors.New("the password was set"), RestartErr: serr, HowToStart: srv.HowToStart()}
		}
	}()

	stmt := []byte(fmt.Sprintf("SET PASSWORD FOR %s@%s = PASSWORD(%s);\n", SQLString(r.Account), SQLString(r.Host), SQLString(string(r.Password))))
	defer clear(stmt)
	served := make(chan error, 1)
	stopFeed := make(chan struct{})
	defer close(stopFeed)
	go func() { served <- init.feed(stmt, stopFeed) }()

	notice("starting the server once with the init file")
	p, err := srv.StartOnce(ctx, []string{"--init-file=" + init.path, "--skip-networking"})
	if err != nil {
		return fmt.Errorf("could not start the server binary: %w", err)
	}
	stopOnce := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return p.Stop(sctx)
	}
	select {
	case ferr := <-served:
		if ferr != nil {
			stopOnce()
			return fmt.Errorf("the init file was not read: %w", ferr)
		}
	case <-p.Exited():
		return fmt.Errorf("the server exited before reading the init file: %s", lastLines(p.Log(), 5))
	case <-time.After(r.ReadTimeout):
		stopOnce()
		return fmt.Errorf("the server did not read the init file within %s: %s", r.ReadTimeout, lastLines(p.Log(), 5))
	case <-ctx.Done():
		stopOnce()
		return ctx.Err()
	}
	// The statement runs right after the file is read, before the server
	// accepts connections; wait for that (or for an error line).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if l := p.Log(); initErrorLine.MatchString(l) || strings.Contains(l, "ready for connections") {
			break
		}
		exited := false
		select {
		case <-p.Exited():
			exited = true
		case <-time.After(100 * time.Millisecond):
		}
		if exited {
			break
		}
	}
	if err := stopOnce(); err != nil {
		return fmt.Errorf("could not stop the server started with the init file: %w", err)
	}
	if m := initErrorLine.FindString(p.Log()); m != "" {
		return fmt.Errorf("%w for %s@%s: %s", ErrInitFailed, r.Account, r.Host, strings.TrimSpace(m))
	}
	notice("starting the server again as it was started")
	return nil
}

// initFIFO is the init file: a FIFO that only the server's uid may read,
// in a directory of root's that only the server's group may traverse. The
// statement goes through the pipe and never rests on disk.
type initFIFO struct {
	dir, path string
}

func newInitFIFO(parent string, uid, gid int) (*initFIFO, error) {
	if parent == "" {
		parent = DefaultInitDir
	}
	parent, err := filepath.Abs(parent)
	if err != nil {
		return nil, err
	}
	// Every directory above must let the server's uid through, and none
	// may be writable by others than root (a rename would swap the FIFO).
	if err := reachable(parent, uid, gid); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "mysecure-reset-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInitDir, err)
	}
	f := &initFIFO{dir: dir, path: filepath.Join(dir, "init.sql")}
	if err := f.setup(uid, gid); err != nil {
		f.remove()
		return nil, err
	}
	return f, nil
}

func (f *initFIFO) setup(uid, gid int) error {
	// root:GID 0710: the server's group traverses it, nobody may change it.
	if err := os.Chown(f.dir, 0, gid); err != nil {
		return err
	}
	if err := os.Chmod(f.dir, 0o710); err != nil {
		return err
	}
	if err := syscall.Mkfifo(f.path, 0o600); err != nil {
		return err
	}
	return os.Chown(f.path, uid, gid)
}

// feed writes stmt into the FIFO once a reader opened it; stop ends the
// wait.
func (f *initFIFO) feed(stmt []byte, stop <-chan struct{}) error {
	for {
		fd, err := syscall.Open(f.path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err == syscall.ENXIO { // no reader yet
			select {
			case <-stop:
				return errors.New("stopped")
			case <-time.After(20 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return fmt.Errorf("%s is not the FIFO mysecure made", f.path)
		}
		// Blocking writes from here: the statement is small (a pipe
		// buffer holds it), the reader is there.
		for b := stmt; len(b) > 0; {
			n, err := syscall.Write(fd, b)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
}

func (f *initFIFO) remove() { os.RemoveAll(f.dir) }

// reachable checks that uid/gid may search every directory from / to dir,
// and that no directory on the way may be changed by anyone but root.
func reachable(dir string, uid, gid int) error {
	for p := dir; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return fmt.Errorf("%w: %v", ErrInitDir, err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return fmt.Errorf("%w: %s is not a directory", ErrInitDir, p)
		}
		if st.Uid != 0 || (st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0) {
			return fmt.Errorf("%w: %s may be changed by others than root", ErrInitDir, p)
		}
		if uid != 0 {
			var bit uint32 = 0o001
			switch {
			case int(st.Uid) == uid:
				bit = 0o100
			case int(st.Gid) == gid:
				bit = 0o010
			}
			if st.Mode&bit == 0 {
				return fmt.Errorf("%w: the server (uid %d) cannot enter %s (mode %04o)", ErrInitDir, uid, p, st.Mode&0o7777)
			}
		}
		if p == "/" {
			return nil
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}
