package schedule

import (
	"os"
	"path/filepath"

	"github.com/mysecure/mysecure/internal/procfs"
)

// CronStatus says whether a cron daemon could run the lines of a cron.d
// file: which program is installed, and which one runs.
type CronStatus struct {
	// Installed is the path of a cron daemon program, "" if none.
	Installed string
	// Running is the name of a running cron daemon process, "" if none.
	Running string
}

// cronDaemons are the names cron daemons run as: Debian's cron, cronie's
// crond, busybox crond.
var cronDaemons = []string{"cron", "crond", "cronie"}

// FindCron looks for a cron daemon program in binDirs and for a running
// one in proc (normally /proc: each process's comm).
func FindCron(proc string, binDirs []string) CronStatus {
	var st CronStatus
	for _, dir := range binDirs {
		for _, name := range cronDaemons {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				st.Installed = p
				break
			}
		}
		if st.Installed != "" {
			break
		}
	}
	pfs := procfs.At(proc)
	pids, err := pfs.Pids()
	if err != nil {
		return st
	}
	for _, pid := range pids {
		comm, err := pfs.Comm(pid)
		if err != nil {
			continue
		}
		for _, name := range cronDaemons {
			if comm == name {
				st.Running = comm
				return st
			}
		}
	}
	return st
}

// CronBinDirs are where cron daemons are installed.
var CronBinDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}
