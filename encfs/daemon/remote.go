package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/mysecure/mysecure/internal/sshclient"
)

// Runner runs a shell command on a host: an SSH session
// (*sshclient.Client). A command that ran and exited non-zero is an
// *sshclient.ExitError; any other error means the host was not reached.
type Runner interface {
	Run(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error
}

// RemoteStatus is one host's answer to `mysecure remote status`.
type RemoteStatus struct {
	Host      string  `json:"host"`
	Reachable bool    `json:"reachable"`
	Installed bool    `json:"installed"`
	Mounted   bool    `json:"mounted"`
	Mode      string  `json:"mode,omitempty"`
	Rules     int     `json:"rules"`
	Status    *Status `json:"status,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// remoteStatusCommand runs `mysecure status --json` on the host; 127:
// not installed. It holds no secret.
const remoteStatusCommand = `if command -v mysecure >/dev/null 2>&1; then exec mysecure status --json; else PATH=$PATH:/usr/local/sbin:/usr/sbin; command -v mysecure >/dev/null 2>&1 && exec mysecure status --json; exit 127; fi`

// RemoteStatusOf asks host, through r, whether mysecure is installed
// there and what its daemon serves. `status` exits non-zero when nothing
// is mounted: its JSON answers all the same.
func RemoteStatusOf(ctx context.Context, host string, r Runner) RemoteStatus {
	st := RemoteStatus{Host: host, Reachable: true}
	var out, errb strings.Builder
	err := r.Run(ctx, remoteStatusCommand, nil, &out, &errb)
	var ee *sshclient.ExitError
	switch {
	case errors.As(err, &ee) && ee.Status == 127:
		st.Error = "mysecure is not installed"
		return st
	case err != nil && !errors.As(err, &ee):
		st.Reachable, st.Error = false, oneLine(err.Error())
		return st
	}
	st.Installed = true
	var ds Status
	if jerr := json.Unmarshal([]byte(out.String()), &ds); jerr != nil {
		st.Error = "mysecure status --json: " + oneLine(strings.TrimSpace(errb.String()+" "+jerr.Error()))
		return st
	}
	st.Status, st.Mounted, st.Mode, st.Rules = &ds, ds.Mounted, string(ds.Mode), ds.Rules
	return st
}

// oneLine folds whitespace, newlines included, into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
