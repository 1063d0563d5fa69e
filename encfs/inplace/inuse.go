package inplace

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)

	var first *InUseError
	hits := 0
	hit := func(pid int, p string, cwd bool) {
		hits++
		if first == nil {
			comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
			first = &InUseError{Path: strings.TrimSuffix(p, " (deleted)"), PID: pid, Command: strings.TrimSpace(string(comm)), Cwd: cwd}
		}
	}
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil && under(cwd) {
			hit(pid, cwd, true)
		}
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			t, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
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
