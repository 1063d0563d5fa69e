// Command mysecure keeps MySQL and MariaDB data, logs, config files and
// backups encrypted at rest. This package holds the cobra wiring only:
// flags, configuration, output and exit codes. The work lives in encfs/
// and the modules.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
