package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// nsLastPid is the kernel's last allocated pid of the caller's pid
// namespace; root writes it to choose the next pid (CRIU uses it).
const nsLastPid = "/proc/sys/kernel/ns_last_pid"

// TestAttackPidReuse: a pid-reuse race between identification and
// decision. An allowed program (/usr/bin/cat by its fingerprint) reads a
// protected file and exits; the daemon has identified its pid and keeps
// that identity for the next opens of the pid (acl's per-pid cache). The
// attacker then gets that very pid for its own program, a byte-identical
// copy of cat at another path, by setting ns_last_pid just before it
// forks, and opens the same file. The daemon must deny it: its identity is
// bound to the process, not to the number (a /proc/PID descriptor that
// stops reaching the process when it exits, and the start time read
// before and after). Tried until the attacker got the pid a few times.
//
// The other half of the race, recycling the pid of a caller while the
// daemon is still deciding its open, cannot be staged: the kernel does
// not let a task whose FUSE request the daemon has read exit, even on
// SIGKILL, until the daemon answers (fuse request_wait_answer), so its
// pid is not free before the decision is made (docs/threat-model.md).
func TestAttackPidReuse(t *testing.T) {
	m, bin, secret, marker := pidReuseSetup(t)
	attacker := filepath.Join(bin, "cat")
	copyFile(t, pidReader, attacker, 0o755)
	// The attacker's program alone is denied.
	if out, err := read(attacker, secret); err == nil || strings.Contains(out, marker) {
		t.Fatalf("copy of cat at another path read the file: %q %v", out, err)
	}

	hits, tries := 0, 0
	for ; tries < 200 && hits < 5; tries++ {
		r := exec.Command(pidReader, secret)
		out, err := r.CombinedOutput()
		if err != nil || !strings.Contains(string(out), marker) {
			t.Fatalf("allowed reader: %q %v", out, err)
		}
		pid := r.Process.Pid
		if tries == 0 {
			// Past the fingerprint cache's minimum age of a file
			// version: from now on the reader's identity is kept
			// per pid, which is what the attack aims at.
			time.Sleep(2100 * time.Millisecond)
		}
		if err := os.WriteFile(nsLastPid, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatal(err)
		}
		a := exec.Command(attacker, secret)
		aout, aerr := a.CombinedOutput()
		if aerr == nil || strings.Contains(string(aout), marker) {
			t.Fatalf("attack succeeded: pid %d (the reader had %d) read the file: %q", a.Process.Pid, pid, aout)
		}
		if a.Process.Pid != pid {
			continue // another process on the host took the pid first
		}
		hits++
		if !strings.Contains(string(aout), "Permission denied") {
			t.Fatalf("pid %d reused by the attacker: %q %v, want Permission denied", pid, aout, aerr)
		}
		if !auditDenied(t, m.audit, pid, attacker) {
			t.Fatalf("no deny of %s as pid %d in the audit log", attacker, pid)
		}
	}
	t.Logf("attacker got the allowed reader's pid %d times in %d tries: denied every time", hits, tries)
	if hits == 0 {
		t.Fatalf("the attacker never got the reader's pid in %d tries (the host forks too much?)", tries)
	}
}

// pidReader is the allowed program of the pid-reuse attacks: an old file,
// so that the daemon keeps its identity per pid.
const pidReader = "/usr/bin/cat"

// pidReuseSetup mounts a volume where pidReader may read pidreuse.cnf of
// @mysqlbackup, which holds marker, and returns the mount, a directory for
// programs, the file and the marker. It needs a writable ns_last_pid.
func pidReuseSetup(t *testing.T) (m *mountEnv, bin, secret, marker string) {
	t.Helper()
	m = newMount(t)
	last, err := os.ReadFile(nsLastPid)
	if err == nil {
		err = os.WriteFile(nsLastPid, last, 0)
	}
	if err != nil {
		// Readable but not writable without CAP_SYS_ADMIN or
		// CAP_CHECKPOINT_RESTORE, or missing without
		// CONFIG_CHECKPOINT_RESTORE.
		testenv.Missing(t, "writable "+nsLastPid, err.Error())
	}
	bin = filepath.Join(m.dir, "bin")
	os.Mkdir(bin, 0o755)
	writer := filepath.Join(bin, "writer")
	copyFile(t, "/usr/bin/tee", writer, 0o755)
	m.aclAdd("ALLOW @mysqlbackup pidreuse.cnf " + pidReader)
	m.aclAdd("ALLOW @mysqlbackup pidreuse.cnf " + writer)
	secret = filepath.Join(m.mnt, "mysqlbackup", "pidreuse.cnf")
	marker = "PIDREUSE-" + randHex(8)
	w := exec.Command(writer, secret)
	w.Stdin = strings.NewReader("[client]\npassword=" + marker + "\n")
	if out, err := w.CombinedOutput(); err != nil {
		t.Fatalf("allowed writer: %v %s", err, out)
	}
	return m, bin, secret, marker
}

// auditDenied reports whether the audit log holds a deny of exe as pid.
func auditDenied(t *testing.T, audit string, pid int, exe string) bool {
	t.Helper()
	b, err := os.ReadFile(audit)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var r struct {
			Decision, Exe string
			Pid           int
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Decision == "deny" && r.Pid == pid && r.Exe == exe {
			return true
		}
	}
	return false
}

// TestAttackPidReuseDuringDecision stages the other half of the race: the
// caller is killed while the daemon is still identifying it (hashing a
// 512 MiB program on its first run), and the attacker at once asks the
// kernel for that pid again, for the allowed reader. The kernel keeps the
// killed caller until the daemon answers its open (FUSE waits for the
// reply of a request the daemon has read, even on SIGKILL), so the pid is
// never free during the decision: the killed caller does not exit until
// the daemon has denied it (by its own program, in the audit log), and
// every try meanwhile gets another pid.
func TestAttackPidReuseDuringDecision(t *testing.T) {
	m, bin, secret, _ := pidReuseSetup(t)
	// Cats with 512 MiB of (sparse) zeros after them: they still run.
	// Each is named by a rule, then changed (its last byte), so that the
	// daemon hashes all of it on the open before it denies it.
	const rounds = 2
	bigs := make([]string, rounds)
	for i := range bigs {
		bigs[i] = filepath.Join(bin, "bigcat"+strconv.Itoa(i))
		copyFile(t, pidReader, bigs[i], 0o755)
		if err := os.Truncate(bigs[i], 512<<20); err != nil {
			t.Fatal(err)
		}
		m.aclAdd("ALLOW @mysqlbackup pidreuse.cnf " + bigs[i])
		f, err := os.OpenFile(bigs[i], os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{1}, 512<<20-1)
		f.Close()
	}
	blocked, recycled := 0, 0
	for round, big := range bigs {
		a := exec.Command(big, secret)
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		pid := a.Process.Pid
		// Wait until it sleeps waiting for the daemon's answer to a FUSE
		// request for 50 ms on end: the open being decided, not one of
		// the lookups before it (each well under a millisecond).
		inOpen := false
		var since time.Time
		for i := 0; i < 1000 && !inOpen; i++ {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
			switch {
			case !strings.Contains(string(b), "request_wait_answer") && !strings.Contains(string(b), "fuse"):
				since = time.Time{}
			case since.IsZero():
				since = time.Now()
			default:
				inOpen = time.Since(since) >= 50*time.Millisecond
			}
			if !inOpen {
				time.Sleep(2 * time.Millisecond)
			}
		}
		if !inOpen {
			a.Process.Kill()
			a.Wait()
			t.Logf("round %d: the caller was never seen waiting for the daemon", round)
			continue
		}
		blocked++
		killed := time.Now()
		a.Process.Kill()
		reaped := make(chan struct{})
		go func() { a.Wait(); close(reaped) }()
		// Ask for the pid again and again until the caller is gone.
	tries:
		for {
			select {
			case <-reaped:
				break tries
			default:
			}
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err := os.WriteFile(nsLastPid, []byte(strconv.Itoa(pid-1)), 0); err != nil {
				t.Fatal(err)
			}
			r := exec.Command(pidReader, secret)
			out, err := r.CombinedOutput()
			if r.Process.Pid == pid {
				// Only possible once the killed caller was reaped.
				select {
				case <-reaped:
				default:
					t.Fatalf("round %d: pid %d handed out again while the killed caller (%q) was still waiting for the daemon: read %q %v", round, pid, stat, out, err)
				}
				break tries
			}
			// Tries while the caller had not even exited (a zombie
			// holds its pid too, until its parent reaps it).
			if _, st, _ := strings.Cut(string(stat), ") "); st != "" && !strings.HasPrefix(st, "Z") {
				recycled++
			}
		}
		t.Logf("round %d: caller %d killed during the decision, gone after %v", round, pid, time.Since(killed).Round(time.Millisecond))
		if b, _ := os.ReadFile(m.audit); strings.Contains(string(b), `"decision":"allow"`) && strings.Contains(string(b), big) {
			t.Fatalf("round %d: an open was allowed for %s", round, big)
		}
		if !auditDenied(t, m.audit, pid, big) {
			t.Fatalf("round %d: no deny of %s as pid %d in the audit log", round, big, pid)
		}
		os.Remove(big)
	}
	t.Logf("%d callers killed while the daemon decided; %d tries for their pids while they had not exited got other pids", blocked, recycled)
	if blocked == 0 || recycled == 0 {
		t.Fatal("the race was never staged: no caller seen waiting for the daemon, or no try made while it waited")
	}
}
