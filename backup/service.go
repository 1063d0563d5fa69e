package backup

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mysecure/mysecure/encfs/tree"
	"github.com/mysecure/mysecure/encfs/volume"
)

// Config is what a Service is built from: the daemon's configuration, or
// a run in the CLI's process (--local).
type Config struct {
	Store    string // the store directory; run locks go to STORE/ms.locks
	Category string // the category that holds backups and credentials
	// Tools as configured. Tools.RuntimeDir is kept only when it is an
	// existing directory (the daemon's socket directory, a tmpfs);
	// otherwise the FIFOs go to the system's temporary directory.
	Tools   Tools
	Remotes map[string]ObjectStore
	SSH     SSHDialer
	Log     *slog.Logger
}

// NewService builds the backup module on unlocked keys.
func NewService(vol *volume.Volume, keys *volume.Keys, c Config) (*Service, error) {
	t, err := tree.Open(c.Store, c.Category, vol, keys)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(c.Tools.RuntimeDir); err != nil || !fi.IsDir() {
		c.Tools.RuntimeDir = ""
	}
	return &Service{
		Tree:    t,
		Remotes: c.Remotes,
		Tools:   c.Tools,
		LockDir: filepath.Join(c.Store, "ms.locks"),
		Log:     c.Log,
		SSH:     c.SSH,
	}, nil
}
