package acl

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/procfs"
)

// ErrProcessGone is wrapped by Identify errors when the process exited, its
// pid was reused, or it executed another program while being identified.
var ErrProcessGone = errors.New("process exited while being identified")

// Process is an identified process.
type Process struct {
	Pid, PPid int     // the process (or thread) and its parent, from /proc/PID/stat
	Uid       uint32  // real uid from /proc/PID/status
	Exe       Program // /proc/PID/exe resolved path + SHA-256 of the file actually executing
	// Script is, for an interpreter, the script it runs (see LoadScript). It
	// is nil until LoadScript is called, and stays nil when there is none or
	// it cannot be read.
	Script *Program

	startTime uint64 // field 22 of /proc/PID/stat, clock ticks after boot
	id        *Identifier
	lazy      *lazyScript
}

type lazyScript struct {
	once sync.Once
	prog *Program
	err  error
}

// IdentifierOptions configures an Identifier.
type IdentifierOptions struct {
	// ProcRoot is where procfs is mounted; "" means procfs.Root.
	ProcRoot string
	// HashInMount, when set, is asked first for paths it owns (executables
	// that live inside the encrypted mount, whose plaintext the daemon must
	// hash without going through the kernel). It returns ok=false for
	// paths it does not own. Its results are not cached here: it caches
	// what it needs itself.
	//
	// st is the stat of the file the process is actually executing (or
	// of the script as the process sees it), nil for a path an admin
	// named (acl add): the owner must check that it is the very file on
	// the mount, not one another mount namespace put at the same path.
	HashInMount func(path string, st *unix.Stat_t) (sum string, ok bool, err error)
}

// Identifier identifies processes from /proc and fingerprints files with a
// cache. It is safe for concurrent use.
type Identifier struct {
	proc        procfs.FS
	inMount     func(path string, st *unix.Stat_t) (string, bool, error)
	cache       fingerprintCache
	hashes      atomic.Uint64
	minCacheAge time.Duration // tests lower it

	// procMu guards procs; a descriptor is closed only under the write
	// lock, so a check holding the read lock never uses a reused number.
	procMu sync.RWMutex
	procs  map[int]*procEntry
}

// procEntry is an identified process kept with an open /proc/PID
// descriptor: while that descriptor still reaches the process and its
// exe is the same file version, the identity holds.
type procEntry struct {
	dirfd int
	link  string  // raw /proc/PID/exe link
	exe   fileKey // the executing file when it was hashed
	p     Process
}

const maxProcEntries = 1024

func (id *Identifier) cached(pid int) *Process {
	id.procMu.RLock()
	e := id.procs[pid]
	if e == nil {
		id.procMu.RUnlock()
		return nil
	}
	var st unix.Stat_t
	ok := unix.Fstatat(e.dirfd, "exe", &st, 0) == nil && keyOf(&st) == e.exe
	// The key holds the ctime, which a rename or a new link changes: a
	// file with one name and an unchanged key still has the path we
	// recorded. Only a file with several names could be running under
	// another one, so only then is the link read again.
	if ok && st.Nlink != 1 {
		link, err := procfs.ReadlinkAt(e.dirfd, "exe")
		ok = err == nil && link == e.link
	}
	id.procMu.RUnlock()
	if !ok {
		id.procMu.Lock()
		if id.procs[pid] == e {
			delete(id.procs, pid)
			unix.Close(e.dirfd)
		}
		id.procMu.Unlock()
		return nil
	}
	cp := e.p
	cp.lazy = &lazyScript{}
	return &cp
}

func (id *Identifier) remember(pid, dirfd int, link string, exe fileKey, p *Process) {
	// F_DUPFD_CLOEXEC: a dup'd descriptor is inheritable until marked,
	// and the daemon starts programs (backup tools) concurrently.
	fd, err := unix.FcntlInt(uintptr(dirfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	id.procMu.Lock()
	defer id.procMu.Unlock()
	if id.procs == nil {
		id.procs = map[int]*procEntry{}
	}
	if old := id.procs[pid]; old != nil {
		unix.Close(old.dirfd)
		delete(id.procs, pid)
	}
	if len(id.procs) >= maxProcEntries {
		for k, e := range id.procs {
			unix.Close(e.dirfd)
			delete(id.procs, k)
			break
		}
	}
	c := *p
	c.lazy = nil
	c.Script = nil
	id.procs[pid] = &procEntry{dirfd: fd, link: link, exe: exe, p: c}
}

// NewIdentifier returns an Identifier with an empty fingerprint cache.
func NewIdentifier(o IdentifierOptions) *Identifier {
	return &Identifier{proc: procfs.At(o.ProcRoot), inMount: o.HashInMount, minCacheAge: defaultMinCacheAge}
}

// openProcDir opens /proc/PID. Files read through this descriptor belong
// to that very process: once it exits, reads fail even if the pid is
// reused.
func (id *Identifier) openProcDir(pid int) (int, error) {
	return id.proc.OpenDir(pid)
}

// readUID returns the real uid from /proc/PID/status.
func readUID(dirfd int) (uint32, error) {
	st, err := procfs.StatusAt(dirfd)
	if err != nil {
		return 0, err
	}
	if len(st.Uid) == 0 {
		return 0, errors.New("no Uid line in status")
	}
	return st.Uid[0], nil
}

// isGone reports whether err says a /proc entry disappeared.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}

// procErr wraps an error reading /proc for pid: ErrProcessGone when the
// process vanished.
func procErr(pid int, what string, err error) error {
	if isGone(err) {
		return fmt.Errorf("failed to identify process %d: %w (%s: %v)", pid, ErrProcessGone, what, err)
	}
	return fmt.Errorf("failed to identify process %d: %s: %w", pid, what, err)
}

// deletedSuffix is what the kernel appends to the /proc/PID/exe link of a
// program whose file was removed (for example by a package upgrade).
const deletedSuffix = " (deleted)"

// Identify identifies the process (or thread) pid: its parent, real uid,
// executable path and the SHA-256 of the file it is actually executing.
//
// It opens /proc/PID/exe, which is the very file being executed even if the
// path now names another file or nothing; the hash comes from the
// fingerprint cache keyed by (dev, inode, size, mtime, ctime) and the file
// is read only on a miss. A program whose file was deleted keeps its path
// (without the kernel's " (deleted)"), since its content is still what the
// fingerprint checks. Paths that IdentifierOptions.HashInMount owns are
// hashed by it instead (a deleted program inside the mount cannot be
// identified). Reads go through a descriptor of /proc/PID, which stays
// bound to the process it was opened for.
//
// The start time (field 22 of /proc/PID/stat) and the executable path are
// read before and after: if the process exited, its pid was reused or it
// executed another program meanwhile, the error wraps ErrProcessGone.
//
// The script of an interpreter is not identified here; see LoadScript.
func (id *Identifier) Identify(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("failed to identify process: invalid pid %d", pid)
	}
	if p := id.cached(pid); p != nil {
		return p, nil
	}
	dirfd, err := id.openProcDir(pid)
	if err != nil {
		return nil, procErr(pid, "open", err)
	}
	defer unix.Close(dirfd)
	st, err := procfs.StatAt(dirfd)
	if err != nil {
		return nil, procErr(pid, "stat", err)
	}
	uid, err := readUID(dirfd)
	if err != nil {
		return nil, procErr(pid, "status", err)
	}
	path, err := procfs.ReadlinkAt(dirfd, "exe")
	if err != nil {
		return nil, procErr(pid, "exe", err)
	}
	var est unix.Stat_t
	if err := unix.Fstatat(dirfd, "exe", &est, 0); err != nil {
		return nil, procErr(pid, "exe", err)
	}
	sum, inMount, err := id.hashInMount(path, &est)
	if err == nil && !inMount {
		// A deleted program of the mount must not be opened through the
		// kernel either; its plaintext cannot be hashed by path any more.
		if trimmed, ok := strings.CutSuffix(path, deletedSuffix); ok {
			if _, owned, _ := id.hashInMount(trimmed, &est); owned {
				err = fmt.Errorf("program %s inside the mount was deleted", trimmed)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to identify process %d: %w", pid, err)
	}
	link := path
	var exeKey fileKey
	if !inMount {
		sum, path, exeKey, err = id.hashExe(dirfd, path)
		if err != nil {
			return nil, procErr(pid, "exe", err)
		}
	}
	// Same program and same process as when we started?
	again, err := procfs.ReadlinkAt(dirfd, "exe")
	if err != nil {
		return nil, procErr(pid, "exe", err)
	}
	if again != path && again != path+deletedSuffix {
		return nil, fmt.Errorf("failed to identify process %d: %w (it executed %s while being identified)", pid, ErrProcessGone, again)
	}
	st2, err := procfs.StatAt(dirfd)
	if err != nil {
		return nil, procErr(pid, "stat", err)
	}
	if st2.StartTime != st.StartTime {
		return nil, fmt.Errorf("failed to identify process %d: %w (pid was reused)", pid, ErrProcessGone)
	}
	p := &Process{
		Pid:       pid,
		PPid:      st.PPid,
		Uid:       uid,
		Exe:       Program{Path: path, SHA256: sum},
		startTime: st.StartTime,
		id:        id,
		lazy:      &lazyScript{},
	}
	if !inMount && again == link && exeKey.ctime <= time.Now().Add(-id.minCacheAge).UnixNano() {
		id.remember(pid, dirfd, link, exeKey, p)
	}
	return p, nil
}

// hashExe opens the executing file through the /proc/PID/exe link and
// hashes it. It returns the path to report: link with the kernel's
// " (deleted)" removed when the file really has no name left.
func (id *Identifier) hashExe(dirfd int, link string) (sum, path string, key fileKey, err error) {
	fd, err := openForHash(dirfd, "exe")
	if err != nil {
		return "", "", key, err
	}
	defer unix.Close(fd)
	sum, key, err = id.hashFDKey(fd, link)
	if err != nil {
		return "", "", key, err
	}
	path = link
	if trimmed, ok := strings.CutSuffix(link, deletedSuffix); ok {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil && st.Nlink == 0 {
			path = trimmed
		}
	}
	return sum, path, key, nil
}

// Parent identifies the parent of p (p.PPid) like Identify, and checks it
// really is p's parent: p still runs with that parent, and the parent did
// not start after p (which would mean the parent exited and its pid was
// reused). Otherwise the error wraps ErrProcessGone.
func (id *Identifier) Parent(p *Process) (*Process, error) {
	if p == nil || p.PPid <= 0 {
		return nil, errors.New("failed to identify parent: process has no parent")
	}
	parent, err := id.Identify(p.PPid)
	if err != nil {
		return nil, fmt.Errorf("failed to identify parent: %w", err)
	}
	if parent.startTime > p.startTime {
		return nil, fmt.Errorf("failed to identify parent of %d: %w (parent pid %d was reused)", p.Pid, ErrProcessGone, p.PPid)
	}
	st, err := id.readStatPid(p.Pid)
	if err != nil {
		return nil, procErr(p.Pid, "stat", err)
	}
	if st.StartTime != p.startTime || st.PPid != p.PPid {
		return nil, fmt.Errorf("failed to identify parent of %d: %w (process or parent changed)", p.Pid, ErrProcessGone)
	}
	return parent, nil
}

// LoadScript identifies, once, the script an interpreter process runs, sets
// p.Script and returns it. Identify does not do it, so that the common
// path (no --shell rule involved) stays cheap.
//
// The script is the first argument after argv[0] in /proc/PID/cmdline that
// does not start with '-' (the argument after "--" in any case), resolved
// against /proc/PID/cwd when relative, and hashed through /proc/PID/root or
// /proc/PID/cwd with the fingerprint cache (or by HashInMount). Its path is
// the cleaned path as the interpreter was given it, symbolic links not
// resolved.
//
// Because the rule then allows the interpreter, the search is conservative:
// there is no script (and the error says why) when an option before it
// makes the interpreter run commands from elsewhere ("-", or a short option
// group holding c, i or s as in "bash -s", "python -i", "sh -c"; or
// --rcfile, --init-file), or when the argument directly follows an option
// that could take it as its value (a short option group whose last letter
// is not one of the flags e, u, x, v, w, n, T, B; a long option other than
// --login, --noprofile, --norc, --posix, --verbose, --restricted).
//
// It returns nil and no error when the command line has no script
// argument, nil and an error when it cannot be identified, and an error
// wrapping ErrProcessGone when the process exited or its pid was reused.
func (p *Process) LoadScript() (*Program, error) {
	if p == nil {
		return nil, errors.New("failed to load script: no process")
	}
	if p.lazy == nil || p.id == nil {
		return p.Script, nil // not made by Identify: nothing to load
	}
	p.lazy.once.Do(func() {
		p.lazy.prog, p.lazy.err = p.id.loadScript(p)
		p.Script = p.lazy.prog
	})
	return p.lazy.prog, p.lazy.err
}

// readStatPid reads /proc/PID/stat.
func (id *Identifier) readStatPid(pid int) (procfs.Stat, error) {
	dirfd, err := id.openProcDir(pid)
	if err != nil {
		return procfs.Stat{}, err
	}
	defer unix.Close(dirfd)
	return procfs.StatAt(dirfd)
}

// maxCmdline bounds how much of a command line LoadScript reads; a script
// argument further on is not found (and the --shell rule does not match).
const maxCmdline = 128 << 10

func (id *Identifier) loadScript(p *Process) (*Program, error) {
	dirfd, err := id.openProcDir(p.Pid)
	if err != nil {
		return nil, procErr(p.Pid, "open", err)
	}
	defer unix.Close(dirfd)
	// A reused pid is caught here, before anything of the new process is
	// used, and any later read through dirfd fails if it exits.
	st, err := procfs.StatAt(dirfd)
	if err != nil {
		return nil, procErr(p.Pid, "stat", err)
	}
	if st.StartTime != p.startTime {
		return nil, fmt.Errorf("failed to identify the script of process %d: %w (pid was reused)", p.Pid, ErrProcessGone)
	}
	data, truncated, err := procfs.ReadAt(dirfd, "cmdline", maxCmdline)
	if err != nil {
		return nil, procErr(p.Pid, "cmdline", err)
	}
	args := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	if truncated {
		args = args[:len(args)-1] // the last one may be cut short
	}
	arg, err := scriptArg(args)
	if err != nil {
		return nil, fmt.Errorf("failed to identify the script of process %d: %w", p.Pid, err)
	}
	if arg == "" {
		return nil, nil
	}
	var path, open string
	if filepath.IsAbs(arg) {
		path = filepath.Clean(arg)
		open = "root" + path
	} else {
		cwd, err := procfs.ReadlinkAt(dirfd, "cwd")
		if err != nil {
			return nil, procErr(p.Pid, "cwd", err)
		}
		path = filepath.Join(cwd, arg)
		open = "cwd/" + arg
	}
	var sst unix.Stat_t
	if err := unix.Fstatat(dirfd, open, &sst, 0); err != nil {
		if _, serr := procfs.StatAt(dirfd); serr != nil {
			return nil, procErr(p.Pid, "script", serr)
		}
		return nil, fmt.Errorf("failed to identify the script of process %d: failed to stat %s: %w", p.Pid, path, err)
	}
	sum, ok, err := id.hashInMount(path, &sst)
	if err != nil {
		return nil, fmt.Errorf("failed to identify the script of process %d: %w", p.Pid, err)
	}
	if !ok {
		fd, err := openForHash(dirfd, open)
		if err != nil {
			if _, serr := procfs.StatAt(dirfd); serr != nil {
				return nil, procErr(p.Pid, "script", serr)
			}
			return nil, fmt.Errorf("failed to identify the script of process %d: failed to open %s: %w", p.Pid, path, err)
		}
		sum, err = id.hashFD(fd, path)
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("failed to identify the script of process %d: %w", p.Pid, err)
		}
	}
	if _, err := procfs.StatAt(dirfd); err != nil {
		return nil, procErr(p.Pid, "stat", err)
	}
	return &Program{Path: path, SHA256: sum}, nil
}

// Options of common interpreters (bash, sh, python, perl) that are known
// to be plain flags, and ones that make the interpreter read commands from
// somewhere other than the script file.
const (
	flagLetters   = "euxvwnTB"
	remoteLetters = "cis"
)

var (
	flagLongOptions   = []string{"--login", "--noprofile", "--norc", "--posix", "--verbose", "--restricted"}
	remoteLongOptions = []string{"--rcfile", "--init-file"}
)

// scriptArg picks the script argument from an interpreter's argv (see
// LoadScript): "" and no error when there is none.
func scriptArg(args []string) (string, error) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1], nil
			}
			return "", nil
		case a == "-":
			return "", errors.New("the interpreter reads its program from standard input")
		case strings.HasPrefix(a, "--"):
			name, _, _ := strings.Cut(a, "=")
			for _, o := range remoteLongOptions {
				if name == o {
					return "", fmt.Errorf("interpreter option %q runs commands from another file", a)
				}
			}
			continue
		case strings.HasPrefix(a, "-"):
			if strings.ContainsAny(a[1:], remoteLetters) {
				return "", fmt.Errorf("interpreter option %q runs commands from elsewhere than a script file", a)
			}
			continue
		}
		if i > 1 {
			if prev := args[i-1]; strings.HasPrefix(prev, "-") && !isFlag(prev) {
				return "", fmt.Errorf("argument %q follows interpreter option %q, which may take it as its value", a, prev)
			}
		}
		if a == "" {
			return "", errors.New("empty script argument")
		}
		return a, nil
	}
	return "", nil
}

// isFlag reports whether an option is known to take no separate value.
func isFlag(opt string) bool {
	if strings.HasPrefix(opt, "--") {
		for _, o := range flagLongOptions {
			if opt == o {
				return true
			}
		}
		return strings.Contains(opt, "=")
	}
	last := opt[len(opt)-1]
	return strings.IndexByte(flagLetters, last) >= 0
}
