package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/internal/procfs"
)

// procInfo is the running server process, read from /proc.
type procInfo struct {
	pid  int
	uid  uint32
	exe  string
	args []string
	// env is the process's environment (names and values; values are
	// never put into evidence).
	env []string
}

// serverProc finds the server process through @@pid_file and reads it
// from /proc, once per Run.
func (a *auditor) serverProc(ctx context.Context) (*procInfo, error) {
	if a.procDone {
		return a.proc, a.procErr
	}
	a.procDone = true
	a.proc, a.procErr = a.readServerProc(ctx)
	return a.proc, a.procErr
}

func (a *auditor) readServerProc(ctx context.Context) (*procInfo, error) {
	pf, err := a.variable(ctx, "pid_file")
	if err != nil {
		return nil, err
	}
	if pf == "" || pf == Null {
		return nil, errors.New("the server reports no pid_file")
	}
	if !filepath.IsAbs(pf) {
		dir, err := a.dataDir(ctx)
		if err != nil {
			return nil, err
		}
		pf = filepath.Join(dir, pf)
	}
	b, err := os.ReadFile(pf)
	if err != nil {
		return nil, fmt.Errorf("server process: %v (the audit must run on the server's host)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("server process: %s holds no pid", pf)
	}
	return readProc(a.t.Host.Proc, pid)
}

// readProc reads one process from a proc filesystem.
func readProc(proc string, pid int) (*procInfo, error) {
	pfs := procfs.At(proc)
	p := &procInfo{pid: pid}
	st, err := pfs.Status(pid)
	if err != nil {
		return nil, fmt.Errorf("server process %d: %v", pid, err)
	}
	if len(st.Uid) < 2 {
		return nil, fmt.Errorf("server process %d: no Uid in status", pid)
	}
	p.uid = st.Uid[1] // effective
	if exe, err := pfs.Exe(pid); err == nil {
		p.exe = procfs.TrimDeleted(exe)
	}
	if args, err := pfs.Cmdline(pid); err == nil {
		p.args = slices.DeleteFunc(args, func(s string) bool { return s == "" })
	}
	env, err := pfs.Environ(pid)
	if err != nil {
		return nil, fmt.Errorf("server process %d: environment: %v", pid, err)
	}
	p.env = env
	return p, nil
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}

func statGroup(st fs.FileInfo) uint32 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Gid
	}
	return 0
}

func statDev(st fs.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev)
	}
	return 0
}

// fileEv is structured evidence about a file.
func fileEv(path string, st fs.FileInfo, uid uint32, text string) Evidence {
	return Evidence{Text: text, File: path, Mode: fmt.Sprintf("%04o", st.Mode().Perm()), Owner: userName(uid) + ":" + groupName(statGroup(st))}
}

// serverFilePerms checks that path is owned by the server user and its
// group and has no permission outside max (such as 0660). what names the
// file in the evidence.
func (a *auditor) serverFilePerms(path, what string, max fs.FileMode) (fails, notes []Evidence, err error) {
	uid, err := a.serverUID()
	if err != nil {
		return nil, nil, err
	}
	gid, err := a.serverGID()
	if err != nil {
		return nil, nil, err
	}
	st, owner, err := statOwner(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v (the audit must run on the server's host)", what, err)
	}
	perm := st.Mode().Perm()
	if owner != uid || statGroup(st) != gid {
		fails = append(fails, fileEv(path, st, owner, fmt.Sprintf("%s %s is owned by %s:%s, not %s:%s", what, path, userName(owner), groupName(statGroup(st)), a.t.ServerUser, groupName(gid))))
	}
	if perm&^max != 0 {
		fails = append(fails, fileEv(path, st, owner, fmt.Sprintf("%s %s has mode %04o, more than %04o", what, path, perm, max)))
	}
	notes = append(notes, fileEv(path, st, owner, what+" "+describe(path, st, owner)))
	return fails, notes, nil
}

// readLines reads a text file's lines.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// loginShell returns the shell of user name in the passwd file.
func loginShell(passwd, name string) (string, error) {
	lines, err := readLines(passwd)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) >= 7 && f[0] == name {
			return f[6], nil
		}
	}
	return "", fmt.Errorf("%s: no user %s", passwd, name)
}

// within reports whether path is dir or below it (both cleaned).
func within(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// resolved follows symlinks when it can.
func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}
