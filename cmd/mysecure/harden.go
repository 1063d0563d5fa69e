package main

import "golang.org/x/sys/unix"

// hardenProcess keeps secrets out of core dumps and away from same-uid
// debuggers: no core file, and the process is not dumpable (which also
// makes /proc/PID/mem and ptrace root-only). Failures are ignored: the
// calls only add protection.
func hardenProcess() {
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
