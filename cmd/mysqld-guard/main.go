// Command mysqld-guard is the --skip-grant-tables guard installed by
// `mysecure harden mysqld` in front of the encrypted server binary. See
// package hardening/guard and docs/harden.md.
package main

import (
	"os"

	"github.com/mysecure/mysecure/hardening/guard"
)

func main() {
	os.Exit(guard.Main(os.Args, os.Stderr))
}
