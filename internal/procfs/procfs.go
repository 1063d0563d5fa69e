// Package procfs is the one reader of /proc and of the mount table
// (/proc/self/mountinfo): process stat and status, executable, command
// line, environment, working directory, descriptors, cgroups, mounts.
//
// Every function reads the kernel's files and parses them; none of them
// keeps state, prints or changes anything. The package-level functions
// read /proc; At returns the same readers for another procfs root (tests
// point it at a stand-in tree).
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Root is where procfs is mounted.
const Root = "/proc"

// DeletedSuffix is what the kernel appends to the /proc/PID/exe (or fd)
// link of a file that was removed, for example by a package upgrade.
const DeletedSuffix = " (deleted)"

// TrimDeleted removes the kernel's DeletedSuffix from a link.
func TrimDeleted(link string) string { return strings.TrimSuffix(link, DeletedSuffix) }

// FS reads a procfs mounted at a root. The zero value reads Root.
type FS struct{ root string }

// At returns the readers for the procfs mounted at root ("" means Root).
func At(root string) FS { return FS{root: root} }

var std FS

// Root returns where f reads.
func (f FS) Root() string {
	if f.root == "" {
		return Root
	}
	return f.root
}

// Path is the path of name under f's directory of pid ("" names the
// directory itself).
func (f FS) Path(pid int, name string) string {
	if name == "" {
		return filepath.Join(f.Root(), strconv.Itoa(pid))
	}
	return filepath.Join(f.Root(), strconv.Itoa(pid), name)
}

// Path is the path of name under /proc/PID ("" names the directory).
func Path(pid int, name string) string { return std.Path(pid, name) }

// SelfFDPath is /proc/self/fd/FD: opening it opens the file fd refers to
// again (a new open file description), even after a rename.
func SelfFDPath(fd int) string { return Root + "/self/fd/" + strconv.Itoa(fd) }

// FDPath is /proc/PID/fd/FD, which opens the file pid's fd refers to.
func FDPath(pid, fd int) string { return std.Path(pid, "fd/"+strconv.Itoa(fd)) }

// Pids lists the processes, in increasing order.
func (f FS) Pids() ([]int, error) {
	ents, err := os.ReadDir(f.Root())
	if err != nil {
		return nil, fmt.Errorf("failed to list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Pids lists the processes of /proc, in increasing order.
func Pids() ([]int, error) { return std.Pids() }

// Stat is what this package parses of /proc/PID/stat.
type Stat struct {
	Pid       int
	Comm      string // field 2, without its parentheses
	State     byte   // field 3: R, S, D, Z, X ...
	PPid      int    // field 4
	Pgid      int    // field 5
	StartTime uint64 // field 22: clock ticks after boot; with the pid it names one process for good
}

// Zombie reports whether the process has ended and waits for its parent
// (state Z), or is being reaped (X).
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// ParseStat parses the content of /proc/PID/stat. The command name
// (field 2) is in parentheses and may itself hold spaces and ')', so the
// fields after it are counted from the last ')'.
func ParseStat(data []byte) (Stat, error) {
	open := bytes.IndexByte(data, '(')
	i := bytes.LastIndexByte(data, ')')
	if open < 0 || i < open {
		return Stat{}, errors.New("no command name in stat")
	}
	var s Stat
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("bad pid in stat: %q", data[:open])
	}
	s.Pid, s.Comm = pid, string(data[open+1:i])
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[2] field 5 (pgrp),
	// f[19] field 22 (starttime).
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("short stat: %d fields after the command name", len(f))
	}
	s.State = f[0][0]
	if s.PPid, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("bad ppid in stat: %q", f[1])
	}
	if s.Pgid, err = strconv.Atoi(f[2]); err != nil {
		return Stat{}, fmt.Errorf("bad pgrp in stat: %q", f[2])
	}
	if s.StartTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("bad start time in stat: %q", f[19])
	}
	return s, nil
}

// Stat reads /proc/PID/stat.
func (f FS) Stat(pid int) (Stat, error) {
	b, err := os.ReadFile(f.Path(pid, "stat"))
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", f.Path(pid, "stat"), err)
	}
	return s, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) { return std.Stat(pid) }

// Status is what this package parses of /proc/PID/status.
type Status struct {
	Name string
	Tgid int // the process (thread group) of a thread; 0 when missing
	// Uid and Gid are the real, effective, saved and filesystem ids; nil
	// when the line is missing.
	Uid, Gid []uint32
	Groups   []uint32 // supplementary groups
	Threads  int
	// VmRSS and VmHWM are the resident set size and its peak, in bytes;
	// 0 when missing (kernel threads).
	VmRSS, VmHWM uint64
	// VmLck is the memory locked into RAM (mlock), in bytes.
	VmLck uint64
}

// ParseStatus parses the content of /proc/PID/status. Lines it does not
// know are ignored; a known line with a malformed value is an error.
func ParseStatus(data []byte) (Status, error) {
	var s Status
	ids := func(line, v string) ([]uint32, error) {
		out := []uint32{}
		for _, x := range strings.Fields(v) {
			n, err := strconv.ParseUint(x, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad line in status: %q", line)
			}
			out = append(out, uint32(n))
		}
		return out, nil
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "Name":
			s.Name = v
		case "Tgid":
			s.Tgid, err = strconv.Atoi(v)
		case "Threads":
			s.Threads, err = strconv.Atoi(v)
		case "Uid":
			s.Uid, err = ids(line, v)
			if err == nil && len(s.Uid) == 0 {
				err = fmt.Errorf("bad line in status: %q", line)
			}
		case "Gid":
			s.Gid, err = ids(line, v)
			if err == nil && len(s.Gid) == 0 {
				err = fmt.Errorf("bad line in status: %q", line)
			}
		case "Groups":
			s.Groups, err = ids(line, v)
		case "VmRSS", "VmHWM", "VmLck":
			n, unit, _ := strings.Cut(v, " ")
			var kb uint64
			kb, err = strconv.ParseUint(n, 10, 64)
			if err == nil && strings.TrimSpace(unit) != "kB" {
				err = fmt.Errorf("bad unit in status: %q", line)
			}
			switch k {
			case "VmRSS":
				s.VmRSS = kb << 10
			case "VmHWM":
				s.VmHWM = kb << 10
			default:
				s.VmLck = kb << 10
			}
		}
		if err != nil {
			if _, isNum := err.(*strconv.NumError); isNum {
				err = fmt.Errorf("bad line in status: %q", line)
			}
			return Status{}, err
		}
	}
	return s, nil
}

// Status reads /proc/PID/status.
func (f FS) Status(pid int) (Status, error) {
	b, err := os.ReadFile(f.Path(pid, "status"))
	if err != nil {
		return Status{}, err
	}
	s, err := ParseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", f.Path(pid, "status"), err)
	}
	return s, nil
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (Status, error) { return std.Status(pid) }

// Exe reads the /proc/PID/exe link: the program's path, with
// DeletedSuffix when its file was removed.
func (f FS) Exe(pid int) (string, error) { return os.Readlink(f.Path(pid, "exe")) }

// Exe reads the /proc/PID/exe link (see FS.Exe).
func Exe(pid int) (string, error) { return std.Exe(pid) }

// Cwd reads the /proc/PID/cwd link: the working directory.
func (f FS) Cwd(pid int) (string, error) { return os.Readlink(f.Path(pid, "cwd")) }

// Cwd reads the /proc/PID/cwd link.
func Cwd(pid int) (string, error) { return std.Cwd(pid) }

// Comm reads /proc/PID/comm, the command name, without its newline.
func (f FS) Comm(pid int) (string, error) {
	b, err := os.ReadFile(f.Path(pid, "comm"))
	return strings.TrimSpace(string(b)), err
}

// Comm reads /proc/PID/comm.
func Comm(pid int) (string, error) { return std.Comm(pid) }

// SplitNul splits a NUL-separated list (cmdline, environ); the trailing
// NULs are dropped, and an empty input gives nil.
func SplitNul(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	var out []string
	for a := range bytes.SplitSeq(b, []byte{0}) {
		out = append(out, string(a))
	}
	return out
}

// Cmdline reads /proc/PID/cmdline, the arguments (argv[0] first); nil
// for a kernel thread or a zombie.
func (f FS) Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(f.Path(pid, "cmdline"))
	if err != nil {
		return nil, err
	}
	return SplitNul(b), nil
}

// Cmdline reads /proc/PID/cmdline.
func Cmdline(pid int) ([]string, error) { return std.Cmdline(pid) }

// Environ reads /proc/PID/environ, the NAME=value strings the process
// started with (empty entries dropped). Only root or the owner may read
// it.
func (f FS) Environ(pid int) ([]string, error) {
	b, err := os.ReadFile(f.Path(pid, "environ"))
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(SplitNul(b), func(s string) bool { return s == "" }), nil
}

// Environ reads /proc/PID/environ.
func Environ(pid int) ([]string, error) { return std.Environ(pid) }

// FDs lists the open descriptors of pid, in increasing order.
func (f FS) FDs(pid int) ([]int, error) { return listFDs(f.Path(pid, "fd")) }

// FDs lists the open descriptors of pid.
func FDs(pid int) ([]int, error) { return std.FDs(pid) }

// SelfFDs lists this process's open descriptors, in increasing order
// (including, for the moment of the listing, the one that reads it).
func SelfFDs() ([]int, error) { return listFDs(Root + "/self/fd") }

func listFDs(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// FDLink reads the /proc/PID/fd/FD link: a path for a file, or
// "pipe:[N]", "socket:[N]", "anon_inode:..." for the others.
func (f FS) FDLink(pid, fd int) (string, error) {
	return os.Readlink(f.Path(pid, "fd/"+strconv.Itoa(fd)))
}

// FDLink reads the /proc/PID/fd/FD link.
func FDLink(pid, fd int) (string, error) { return std.FDLink(pid, fd) }

// Cgroup is one line of /proc/PID/cgroup.
type Cgroup struct {
	ID          int    // hierarchy ID; 0 for the unified (v2) hierarchy
	Controllers string // comma-separated; "" for v2
	Path        string // relative to the hierarchy's mount
}

// ParseCgroup parses the content of /proc/PID/cgroup; malformed lines are
// skipped.
func ParseCgroup(data []byte) []Cgroup {
	var out []Cgroup
	for line := range strings.SplitSeq(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil {
			continue
		}
		out = append(out, Cgroup{ID: id, Controllers: parts[1], Path: parts[2]})
	}
	return out
}

// Cgroup reads /proc/PID/cgroup.
func (f FS) Cgroup(pid int) ([]Cgroup, error) {
	b, err := os.ReadFile(f.Path(pid, "cgroup"))
	if err != nil {
		return nil, err
	}
	return ParseCgroup(b), nil
}

// ReadCgroup reads /proc/PID/cgroup.
func ReadCgroup(pid int) ([]Cgroup, error) { return std.Cgroup(pid) }
