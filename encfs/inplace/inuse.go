package inplace

import (
	"slices"
	"strings"

	"github.com/mysecure/mysecure/internal/procfs"
)

// checkInUse looks through /proc for processes that have a file under one
// of the roots open, or their working directory there. It returns an
// *InUseError naming the first one found (lowest pid), or nil. Processes
// that vanish while being looked at are skipped.
func checkInUse(roots []string) error {
	var clean []string
	for _, r := range roots {
		if r != "" && !slices.Contains(clean, r) {
			clean = append(clean, r)
		}
	}
	under := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		for _, r := range clean {
			if within(p, r) {
				return true
			}
		}
		return false
	}

	pids, err := procfs.Pids()
	if err != nil {
		return err
	}

	var first *InUseError
	hits := 0
	hit := func(pid int, p string, cwd bool) {
		hits++
		if first == nil {
			comm, _ := procfs.Comm(pid)
			first = &InUseError{Path: procfs.TrimDeleted(p), PID: pid, Command: comm, Cwd: cwd}
		}
	}
	for _, pid := range pids {
		if cwd, err := procfs.Cwd(pid); err == nil && under(cwd) {
			hit(pid, cwd, true)
		}
		fds, err := procfs.FDs(pid)
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			t, err := procfs.FDLink(pid, fd)
			if err != nil || !strings.HasPrefix(t, "/") {
				continue // closed meanwhile, or a pipe/socket/anon inode
			}
			if under(t) {
				hit(pid, t, false)
			}
		}
	}
	if first == nil {
		return nil
	}
	first.More = hits - 1
	return first
}
