package hardening

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Finding the programs and the server that harden and the password
// reset work on.

// FindGuardBinary returns the mysqld-guard program: configured when set,
// else the one next to the running executable, else the one on PATH (""
// when there is none: Detect refuses then).
func FindGuardBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "mysqld-guard")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mysqld-guard"); err == nil {
		return p
	}
	return ""
}

// SelfPath is the running executable with its symlinks resolved: the
// program the reset's temporary rule names.
func SelfPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return exe, nil
}

// ParseAccount splits USER@HOST (HOST defaults to localhost); ok is
// false without a user.
func ParseAccount(s string) (account, host string, ok bool) {
	account, host, _ = strings.Cut(s, "@")
	if host == "" {
		host = "localhost"
	}
	return account, host, account != ""
}

// NoServerUserError: the server is not running, so the reset runs it as
// User, and there is no such OS user.
type NoServerUserError struct{ User string }

func (e *NoServerUserError) Error() string {
	return fmt.Sprintf("the server is not running and there is no user %s", e.User)
}

// LocatedServer is the server of a hardened setup as the reset finds it.
type LocatedServer struct {
	*ProcServer
	// UID and GID run the server: the running one's, else serverUser's.
	UID, GID int
}

// Running reports whether the server was running when it was located.
func (s *LocatedServer) Running() bool { return s.Launch != nil }

// LocateServer finds the server p hardened and records how it was
// started (Close releases what that holds). When it is not running, a
// start runs the real binary with p's datadir as serverUser, and a
// missing serverUser is a *NoServerUserError.
func LocateServer(p *Plan, serverUser string) (*LocatedServer, error) {
	s := &LocatedServer{ProcServer: &ProcServer{MountBinary: p.MountBinary, Wrapper: p.Wrapper,
		Fallback: []string{"--datadir=" + p.DataDir, "--user=" + serverUser}}}
	if pid := FindServer(p.MountBinary); pid != 0 {
		l, err := Inspect(pid)
		if err != nil {
			return nil, fmt.Errorf("could not read how the server (pid %d) was started: %w", pid, err)
		}
		s.Launch, s.UID, s.GID = l, l.UID, l.GID
		return s, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, &NoServerUserError{User: serverUser}
	}
	s.UID, _ = strconv.Atoi(u.Uid)
	s.GID, _ = strconv.Atoi(u.Gid)
	return s, nil
}

// Close releases the running server's reopened output descriptors.
func (s *LocatedServer) Close() {
	if s.Launch != nil {
		s.Launch.Close()
	}
}
