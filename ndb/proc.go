package ndb

import (
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/internal/procfs"
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
	fs := procfs.At(root)
	exe, err := fs.Exe(pid)
	if err != nil {
		return Proc{}, false
	}
	p := Proc{Pid: pid, Exe: procfs.TrimDeleted(exe)}
	p.Args, _ = fs.Cmdline(pid)
	p.Cwd, _ = fs.Cwd(pid)
	if env, err := fs.Environ(pid); err == nil {
		for _, kv := range env {
			if !secretEnv(kv) {
				p.Env = append(p.Env, kv)
			}
		}
	}
	if st, err := fs.Status(pid); err == nil {
		if len(st.Uid) > 0 {
			p.Uid = st.Uid[0]
		}
		if len(st.Gid) > 0 {
			p.Gid = st.Gid[0]
		}
		p.Groups = st.Groups
	}
	if st, err := fs.Stat(pid); err == nil {
		p.PPid = st.PPid
	}
	return p, true
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := procfs.ReadStat(pid)
	if err != nil || st.Zombie() {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// scanProcs returns the processes whose program is an NDB program: its
// base name is one of Programs, or its path one of extra (stand-ins or
// binaries with other names), mapped to their kind.
func scanProcs(root string, extra map[string]string) ([]Proc, map[int]string, error) {
	fs := procfs.At(root)
	pids, err := fs.Pids()
	if err != nil {
		return nil, nil, err
	}
	var out []Proc
	kinds := map[int]string{}
	for _, pid := range pids {
		exe, err := fs.Exe(pid)
		if err != nil {
			continue
		}
		exe = procfs.TrimDeleted(exe)
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
