package ndb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mysecure/mysecure/internal/sshclient"
)

// SSHHost runs commands on a remote host over an SSH connection. The
// argv is quoted for the remote shell (sshclient.Quote); stdin goes over
// the session's channel, so that a credential is never in the remote
// command line or environment.
type SSHHost struct {
	Client *sshclient.Client
	// Stdout and Stderr, when set, also get the output as it comes (the
	// CLI prefixes each line with the host's name).
	Stdout, Stderr io.Writer
}

func (h *SSHHost) Name() string { return h.Client.Target().Label() }

func (h *SSHHost) Run(ctx context.Context, argv []string, stdin io.Reader) (string, string, int, error) {
	if len(argv) == 0 {
		return "", "", -1, errors.New("empty command")
	}
	var out, errb strings.Builder
	var ow, ew io.Writer = &out, &errb
	if h.Stdout != nil {
		ow = io.MultiWriter(&out, h.Stdout)
	}
	if h.Stderr != nil {
		ew = io.MultiWriter(&errb, h.Stderr)
	}
	err := h.Client.Run(ctx, sshclient.Quote(argv...), stdin, ow, ew)
	var ee *sshclient.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0, nil
	case errors.As(err, &ee) && ee.Signal == "":
		return out.String(), errb.String(), ee.Status, nil
	}
	return out.String(), errb.String(), -1, err
}

// Quiet returns h without the output it shows as it runs (an SSHHost's
// Stdout and Stderr): for commands whose output is for the roll to read,
// not for the user.
func Quiet(h Host) Host {
	if s, ok := h.(*SSHHost); ok && (s.Stdout != nil || s.Stderr != nil) {
		return &SSHHost{Client: s.Client}
	}
	return h
}

// DialHosts connects to every host of f, in order, before anything
// changes (a host that cannot be reached ends it: nothing was changed),
// and returns them as hosts that show their output on outs as it comes.
// closeAll closes the connections.
func DialHosts(ctx context.Context, f *sshclient.Fleet, outs *sshclient.Outputs) (hosts []Host, closeAll func(), err error) {
	cs, err := f.DialAll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (nothing was changed)", err)
	}
	for _, c := range cs {
		h := &SSHHost{Client: c}
		h.Stdout, h.Stderr, _ = outs.For(c.Target().Label())
		hosts = append(hosts, h)
	}
	return hosts, func() {
		for _, c := range cs {
			c.Close()
		}
	}, nil
}
