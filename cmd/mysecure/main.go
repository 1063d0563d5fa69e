// Command mysecure keeps MySQL and MariaDB data, logs, config files and
// backups encrypted at rest. This package holds the cobra wiring only:
// flags, configuration, output and exit codes. The work lives in encfs/
// and the modules.
package main

import (
	"os"

	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/kdfchild"
)

func main() {
	if kdfchild.IsChild(os.Args) {
		// This binary started again to run one Argon2id.
		os.Exit(kdfchild.Serve(os.Stdin, os.Stdout, os.Stderr))
	}
	// Argon2id runs in a short-lived child: its state, which holds the
	// passphrase, must not stay in the daemon's memory.
	volume.SetArgon2(kdfchild.IDKey)
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
