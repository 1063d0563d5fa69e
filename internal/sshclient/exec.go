package sshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ExitError is a remote command that ended with a non-zero status or a
// signal.
type ExitError struct {
	Host   string
	Status int    // -1 when killed by a signal
	Signal string // "KILL", ... when killed by a signal
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("the remote command on %s was killed by signal %s", e.Host, e.Signal)
	}
	return fmt.Sprintf("the remote command on %s exited with status %d", e.Host, e.Status)
}

// Process is a remote command started with Start.
type Process struct {
	// Stdout is the command's output when Start was given no stdout
	// writer (read it to EOF before Wait).
	Stdout io.Reader

	c    *Client
	conn *ssh.Client
	sess *ssh.Session
	done chan struct{}
	stop func() bool
}

// Start runs command on the remote host (through the user's login shell,
// as sshd does). stdin, when not nil, is copied to the command and then
// closed (EOF); stdout and stderr receive its output (a nil stdout: read
// Process.Stdout instead). Secrets go in stdin:
// the command line is visible in the remote process list and in sshd's
// debug log. When ctx ends, the command gets SIGKILL and the channel is
// closed.
func (c *Client) Start(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) (*Process, error) {
	var conn *ssh.Client
	sess, err := with(ctx, c, func(cn *ssh.Client) (*ssh.Session, error) {
		conn = cn
		return cn.NewSession()
	})
	if errors.Is(err, ErrConnect) {
		return nil, err // lost, and no reconnect left or it failed: says so
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot open a session: %v", ErrConnect, c.target.Label(), err)
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	var out io.Reader
	if stdout == nil {
		if out, err = sess.StdoutPipe(); err != nil {
			sess.Close()
			return nil, err
		}
	}
	if err := sess.Start(command); err != nil {
		sess.Close()
		return nil, fmt.Errorf("%w: %s: cannot start the remote command: %v", ErrConnect, c.target.Label(), err)
	}
	p := &Process{Stdout: out, c: c, conn: conn, sess: sess, done: make(chan struct{})}
	p.stop = context.AfterFunc(ctx, func() {
		sess.Signal(ssh.SIGKILL)
		sess.Close()
	})
	return p, nil
}

// Wait waits for the command: nil for status 0, an *ExitError for
// another status, ErrConnect when the connection died first.
func (p *Process) Wait() error {
	err := p.sess.Wait()
	p.stop()
	p.sess.Close()
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Host: p.c.target.Label(), Status: ee.ExitStatus(), Signal: ee.Signal()}
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) || connGone(err) {
		return fmt.Errorf("%w: %s: the connection ended before the remote command did%s", ErrConnect, p.c.target.Label(), p.c.lostReason(p.conn))
	}
	return fmt.Errorf("%w: %s: %v", ErrConnect, p.c.target.Label(), err)
}

// Run is Start and Wait.
func (c *Client) Run(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	p, err := c.Start(ctx, command, stdin, stdout, stderr)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Quote renders args as one POSIX shell command line, each argument
// single-quoted unless it is plainly safe.
func Quote(args ...string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = quoteArg(a)
	}
	return strings.Join(out, " ")
}

func quoteArg(a string) string {
	if a == "" {
		return "''"
	}
	safe := true
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
