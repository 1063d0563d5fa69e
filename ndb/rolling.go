package ndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Host runs a command on one host of the cluster. Run returns the
// command's output and exit code; err is for a command that could not be
// run at all (no connection, no such program), and exit is then -1.
// stdin, when not nil, is the command's standard input (the only way a
// secret may reach it: never argv or the environment). SSHHost runs on
// a remote host; LocalHost runs on this one.
type Host interface {
	Name() string
	Run(ctx context.Context, argv []string, stdin io.Reader) (stdout, stderr string, exit int, err error)
}

// LocalHost runs commands on this host, with Env added to this process's
// environment.
type LocalHost struct {
	Label string
	Env   []string
}

func (h LocalHost) Name() string { return h.Label }

func (h LocalHost) Run(ctx context.Context, argv []string, stdin io.Reader) (string, string, int, error) {
	if len(argv) == 0 {
		return "", "", -1, errors.New("empty command")
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(c.Environ(), h.Env...)
	c.Stdin = stdin
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errb.String(), -1, err
	}
	return out.String(), errb.String(), 0, nil
}

// HostResult is what one host's run gave.
type HostResult struct {
	Host   string
	Exit   int
	Stdout string
	Stderr string
}

// RollError is a rolling change stopped at one host: the hosts before it
// were changed, the ones after it not touched.
type RollError struct {
	Host    string
	Node    int // the data node (a node roll), else 0
	Exit    int
	Err     error  // the command could not be run
	Last    string // the last line the host's command printed on stderr
	Done    []string
	Skipped []string
}

func (e *RollError) Error() string {
	why := fmt.Sprintf("exit %d: %s", e.Exit, e.Last)
	if e.Err != nil {
		why = e.Err.Error()
	}
	at := "host " + e.Host
	if e.Node != 0 {
		at += fmt.Sprintf(", node %d", e.Node)
	}
	msg := fmt.Sprintf("rolling change stopped at %s (%s)", at, why)
	if len(e.Done) > 0 {
		msg += "; changed before it: " + strings.Join(e.Done, ", ")
	}
	if len(e.Skipped) > 0 {
		msg += "; not touched: " + strings.Join(e.Skipped, ", ")
	}
	return msg
}

func (e *RollError) Unwrap() error { return e.Err }

// Roll runs argv(host) on each host in turn, one host at a time: the next
// host starts only when the previous one's command exited 0 (for `ndb
// enable --all-local --stop` that means each of its nodes reported
// started, or the host was rolled back). The first host that refuses or
// fails stops the roll with a *RollError; hosts after it are not touched.
// report, when set, gets each host's result as it ends.
func Roll(ctx context.Context, hosts []Host, argv func(Host) []string, report func(HostResult)) ([]HostResult, error) {
	var out []HostResult
	var done []string
	for i, h := range hosts {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		stdout, stderr, exit, err := h.Run(ctx, argv(h), nil)
		r := HostResult{Host: h.Name(), Exit: exit, Stdout: stdout, Stderr: stderr}
		out = append(out, r)
		if report != nil {
			report(r)
		}
		if err != nil || exit != 0 {
			re := &RollError{Host: h.Name(), Exit: exit, Err: err, Last: lastLine(stderr), Done: done}
			for _, rest := range hosts[i+1:] {
				re.Skipped = append(re.Skipped, rest.Name())
			}
			return out, re
		}
		done = append(done, h.Name())
	}
	return out, nil
}
