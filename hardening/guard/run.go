package guard

import (
	"encoding/json"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/procfs"
)

// SighupFlag, as the only argument, makes the guard send SIGHUP (reload
// the grant tables) to running servers that were started with grants
// disabled, instead of starting one.
const SighupFlag = "--mysecure-guard-sighup"

// Main is the guard's program: it returns an exit code only when it does
// not exec the server.
//
// The configuration's path is never taken from the environment or the
// command line: it is the one 'harden mysqld' wrote into this copy of the
// guard (ConfigPath), whose fingerprint the rules pin. The file is opened
// once, without following symlinks, and every check runs on that one
// descriptor before it is read (LoadTrusted).
func Main(argv []string, stderr io.Writer) int {
	if len(argv) == 2 && argv[1] == SighupFlag {
		// Signalling needs no trusted configuration: it only tells servers
		// started without grant checks to load them.
		cfg, err := LoadConfig(ConfigPath())
		if err != nil {
			fmt.Fprintf(stderr, "mysecure-guard: error: %v\n", err)
			return 1
		}
		return cfg.sighup(stderr)
	}
	cfg, err := LoadTrusted(ConfigPath())
	if err != nil {
		fmt.Fprintf(stderr, "mysecure-guard: error: %v; not starting the server\n", err)
		fmt.Fprintf(stderr, "mysecure-guard: hint: the configuration must be the one 'mysecure harden mysqld' encrypted into @protected, with the mount up; 'mysecure harden mysqld --undo' restores the plain setup\n")
		return 1
	}
	if err := cfg.checkDataDir(); err != nil {
		fmt.Fprintf(stderr, "mysecure-guard: error: %v; not starting the server\n", err)
		fmt.Fprintf(stderr, "mysecure-guard: hint: the datadir must be the hardened one, inside the mount; is the mount up?\n")
		return 1
	}
	args, fs, ferr := cfg.Filter(argv[1:], os.Getenv("HOME"))
	for _, f := range fs {
		cfg.log(f, stderr)
	}
	if ferr != nil {
		fmt.Fprintf(stderr, "mysecure-guard: error: %v; not starting the server\n", ferr)
		fmt.Fprintf(stderr, "mysecure-guard: hint: the server runs only on the datadir, plugins and paths it was hardened with; to move them, 'mysecure harden mysqld --undo', change the configuration, and harden again\n")
		return 1
	}
	// argv[0] stays what the starter used; the environment is inherited
	// without the dynamic loader's variables.
	err = syscall.Exec(cfg.RealBinary, append([]string{argv[0]}, args...), cleanEnv(os.Environ(), stderr, cfg))
	fmt.Fprintf(stderr, "mysecure-guard: error: cannot run the server %s: %v\n", cfg.RealBinary, err)
	if err == syscall.EACCES {
		fmt.Fprintf(stderr, "mysecure-guard: hint: the mount's rules allow only the genuine guard to read the server binary: is this guard modified, or the mount down?\n")
	}
	return 1
}

type record struct {
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"`
	Pid      int       `json:"pid"`
	Uid      int       `json:"uid"`
	Program  string    `json:"program"`
	Finding
}

func (c *Config) log(f Finding, stderr io.Writer) {
	msg := fmt.Sprintf("%s %q from %s: %s", f.Action, f.Option, f.Source, f.Reason)
	fmt.Fprintf(stderr, "mysecure-guard: %s\n", msg)
	if c.AuditLog != "" {
		b, _ := json.Marshal(record{Time: time.Now().UTC(), Decision: "guard-" + f.Action, Pid: os.Getpid(), Uid: os.Getuid(), Program: "mysqld-guard", Finding: f})
		if af, err := os.OpenFile(c.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			af.Write(append(b, '\n'))
			af.Close()
		} else {
			fmt.Fprintf(stderr, "mysecure-guard: cannot write the audit log %s: %v\n", c.AuditLog, err)
		}
	}
	if c.Syslog {
		if w, err := syslog.New(syslog.LOG_AUTH|syslog.LOG_WARNING, "mysecure-guard"); err == nil {
			w.Warning(msg)
			w.Close()
		}
	}
}

// sighup signals servers started with grants disabled (on their command
// line) to reload the grant tables.
func (c *Config) sighup(stderr io.Writer) int {
	pids, _ := procfs.Pids()
	n := 0
	for _, pid := range pids {
		exe, err := procfs.Exe(pid)
		if err != nil {
			continue
		}
		exe = procfs.TrimDeleted(exe)
		if exe != c.RealBinary && (c.OriginalBinary == "" || exe != c.OriginalBinary) {
			continue
		}
		args, err := procfs.Cmdline(pid)
		if err != nil || len(args) == 0 {
			continue
		}
		for _, s := range args[1:] {
			if !strings.HasPrefix(s, "--") {
				continue
			}
			name, _, _ := strings.Cut(s[2:], "=")
			if IsSkipGrant(name) {
				if err := syscall.Kill(pid, syscall.SIGHUP); err == nil {
					n++
					c.log(Finding{Source: "pid " + strconv.Itoa(pid), Option: s, Action: "reloaded", Reason: "sent SIGHUP to reload the grant tables"}, stderr)
				}
				break
			}
		}
	}
	fmt.Fprintf(stderr, "mysecure-guard: %d server(s) signalled\n", n)
	return 0
}

// cleanEnv drops the dynamic loader's variables (LD_PRELOAD, LD_AUDIT,
// LD_LIBRARY_PATH...): they would run the starter's code inside the real
// binary, which the rules let open @mysql. (mysqld_safe's --malloc-lib
// works through LD_PRELOAD: it is dropped too, and logged.)
func cleanEnv(env []string, stderr io.Writer, c *Config) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "LD_") {
			name, _, _ := strings.Cut(kv, "=")
			c.log(Finding{Source: "environment", Option: name, Action: "removed", Reason: "the dynamic loader would run other code inside the server"}, stderr)
			continue
		}
		out = append(out, kv)
	}
	return out
}
