package ndb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Proc is a running process of an NDB program, read from /proc.
type Proc struct {
	Pid  int
	PPid int
	Exe  string   // the program's path (readlink /proc/PID/exe)
	Args []string // the exact command line, argv[0] included
	Cwd  string
	// Env is the environment without the variables that may hold
	// secrets (see secretEnv).
	Env []string
	// Uid, Gid and Groups are the real user, group and supplementary
	// groups the process runs as.
	Uid, Gid uint32
	Groups   []uint32
}

// Programs are the base names of the NDB programs discovery looks for.
var Programs = map[string]string{"ndbd": KindData, "ndbmtd": KindData, "ndb_mgmd": KindMgm}

// secretEnv reports whether an environment variable may hold a secret,
// and is not kept when a node's start is recorded.
func secretEnv(kv string) bool {
	name, _, _ := strings.Cut(kv, "=")
	u := strings.ToUpper(name)
	for _, w := range []string{"PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH"} {
		if strings.Contains(u, w) && u != "PWD" && u != "OLDPWD" {
			return true
		}
	}
	return u == "MYSQL_PWD"
}

// readProc reads one process; ok is false when it is gone or unreadable.
func readProc(root string, pid int) (Proc, bool) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		return Proc{}, false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	p := Proc{Pid: pid, Exe: exe}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		for _, a := range bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
			p.Args = append(p.Args, string(a))
		}
	}
	p.Cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
	if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for _, kv := range bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
			if len(kv) > 0 && !secretEnv(string(kv)) {
				p.Env = append(p.Env, string(kv))
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			f := strings.Fields(v)
			switch {
			case k == "Uid" && len(f) > 0:
				u, _ := strconv.ParseUint(f[0], 10, 32)
				p.Uid = uint32(u)
			case k == "Gid" && len(f) > 0:
				g, _ := strconv.ParseUint(f[0], 10, 32)
				p.Gid = uint32(g)
			case k == "Groups":
				for _, x := range f {
					if g, err := strconv.ParseUint(x, 10, 32); err == nil {
						p.Groups = append(p.Groups, uint32(g))
					}
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		// pid (comm) state ppid ...: comm may hold spaces and ')'.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 1 {
				p.PPid, _ = strconv.Atoi(f[1])
			}
		}
	}
	return p, true
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 {
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return false
		}
	}
	return syscall.Kill(pid, 0) == nil
}

// scanProcs returns the processes whose program is an NDB program: its
// base name is one of Programs, or its path one of extra (stand-ins or
// binaries with other names), mapped to their kind.
func scanProcs(root string, extra map[string]string) ([]Proc, map[int]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list processes: %w", err)
	}
	var out []Proc
	kinds := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join(root, e.Name(), "exe"))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		kind, ok := extra[exe]
		if !ok {
			kind, ok = Programs[filepath.Base(exe)]
		}
		if !ok {
			continue
		}
		if p, ok := readProc(root, pid); ok {
			out = append(out, p)
			kinds[pid] = kind
		}
	}
	return out, kinds, nil
}

// argValue returns the value of --name=V or --name V in args, and whether
// it was given; names are compared with '_' and '-' alike.
func argValue(args []string, names ...string) (string, bool) {
	val, found := "", false
	for i := 1; i < len(args); i++ {
		a := strings.ReplaceAll(args[i], "_", "-")
		for _, n := range names {
			switch {
			case strings.HasPrefix(a, "--"+n+"="):
				val, found = args[i][len(n)+3:], true
			case a == "--"+n && i+1 < len(args):
				val, found = args[i+1], true
			}
		}
	}
	return val, found
}
