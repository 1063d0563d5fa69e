package config

import (
	"fmt"
	"os"

	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/trust"
)

// HintUntrusted is what to do about a config file another user can change.
const HintUntrusted = "make the file and its directories root's and writable by root only: chown root FILE; chmod go-w FILE (docs/configuration.md)"

// CheckTrusted refuses, for a process running as root (euid 0), a config
// file that another user can change (trust.CheckFile): it names the
// programs root runs (dump-tool, physical-tool, client-tool, hooks), the
// URLs the daemon calls and the group that may start backups. The error
// matches os.ErrPermission (exit 7), not a configuration mistake. Other
// users read it for themselves only, and a file that is not a regular file
// (a pipe given on root's own command line) is as trusted as that command
// line: neither is checked.
func CheckTrusted(file string, euid int) error {
	if euid != 0 || file == "" {
		return nil
	}
	fi, err := os.Stat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return nil // reading it reports what is wrong
	}
	if err := trust.CheckFile(file); err != nil {
		return hint.Wrap(fmt.Errorf("config file %s: %w", file, err), HintUntrusted)
	}
	return nil
}
