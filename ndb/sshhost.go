package ndb

import (
	"context"
	"errors"
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
