package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/sshclient"
)

// shell runs the command through this host's /bin/sh with PATH, as an
// SSH session would on the remote host, and reports exits as the SSH
// client does.
type shell struct{ path string }

func (s shell) Run(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	c.Env = []string{"PATH=" + s.path}
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &sshclient.ExitError{Host: "local", Status: ee.ExitCode()}
	}
	return err
}

// unreachable fails as a lost connection does.
type unreachable struct{}

func (unreachable) Run(context.Context, string, io.Reader, io.Writer, io.Writer) error {
	return errors.New("ssh: handshake failed:\n  connection reset")
}

// stub is a directory with a `mysecure` script of the body given.
func stub(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mysecure"), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRemoteStatusOf(t *testing.T) {
	// Where the command looks when PATH lacks mysecure.
	installedHere := false
	for _, p := range []string{"/usr/local/sbin/mysecure", "/usr/sbin/mysecure"} {
		if _, err := os.Stat(p); err == nil {
			installedHere = true
		}
	}
	t.Run("not installed", func(t *testing.T) {
		st := RemoteStatusOf(context.Background(), "h1", shell{path: t.TempDir()})
		if installedHere {
			if !st.Installed {
				t.Fatalf("mysecure in /usr/sbin or /usr/local/sbin not found: %+v", st)
			}
			return
		}
		if st.Host != "h1" || !st.Reachable || st.Installed || st.Error != "mysecure is not installed" {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("mounted", func(t *testing.T) {
		dir := stub(t, `[ "$1 $2" = "status --json" ] || exit 3
echo '{"mounted":true,"mode":"enforce","rules":4,"store":"/s","mount":"/m"}'`)
		st := RemoteStatusOf(context.Background(), "h2", shell{path: dir})
		if !st.Reachable || !st.Installed || !st.Mounted || st.Mode != "enforce" || st.Rules != 4 || st.Error != "" {
			t.Fatalf("%+v", st)
		}
		if st.Status == nil || st.Status.Mount != "/m" || st.Status.Store != "/s" {
			t.Fatalf("status %+v", st.Status)
		}
	})
	t.Run("not mounted exits non-zero", func(t *testing.T) {
		dir := stub(t, `echo '{"mounted":false}'; exit 5`)
		st := RemoteStatusOf(context.Background(), "h3", shell{path: dir})
		if !st.Reachable || !st.Installed || st.Mounted || st.Status == nil || st.Error != "" {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("no JSON", func(t *testing.T) {
		dir := stub(t, `echo 'not json'; echo 'mysecure: error:
 boom' >&2; exit 1`)
		st := RemoteStatusOf(context.Background(), "h4", shell{path: dir})
		if !st.Installed || st.Status != nil || !strings.HasPrefix(st.Error, "mysecure status --json: mysecure: error: boom invalid character") {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		st := RemoteStatusOf(context.Background(), "h5", unreachable{})
		if st.Reachable || st.Installed || st.Error != "ssh: handshake failed: connection reset" {
			t.Fatalf("%+v", st)
		}
	})
}
