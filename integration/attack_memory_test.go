package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/procfs"
)

// TestDaemonMemoryCredentialCopies reads the whole readable memory of a
// mounted daemon (/proc/PID/mem, as root with gcore would) after the mount
// and after admin requests with the master credential (`acl add`,
// `category add`, `mode set permissive`), and counts the copies of the
// passphrase and the salt, as they are and base64-encoded (as they would
// travel in JSON): there must be none. Argon2id runs in a short-lived
// child process (internal/kdfchild), and the CLI proves the passphrase
// with its slot's key instead of sending it (docs/threat-model.md). The
// scanner itself is checked on a process that does hold a marker. The
// daemon's master key is on locked pages: VmLck is not 0.
func TestDaemonMemoryCredentialCopies(t *testing.T) {
	dir := t.TempDir()
	e, secrets := newStressEnv(t, dir, filepath.Join(dir, "store"))
	m := mountVolume(t, e, nil)

	// The scanner finds a marker that a process holds (in its argv).
	marker := "MEMSCAN-" + randHex(8)
	sh := exec.Command("/bin/sh", "-c", "sleep 30", marker)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	found, _ := scanMemory(t, sh.Process.Pid, map[string]string{marker: "marker"})
	sh.Process.Kill()
	sh.Wait()
	if len(found) == 0 {
		t.Fatalf("the memory scanner did not find a marker in the argv of pid %d", sh.Process.Pid)
	}

	pid := m.daemonPid()
	check := func(when string) {
		t.Helper()
		found, scanned := scanMemory(t, pid, secretForms(secrets))
		t.Logf("%s: %d MiB of daemon memory scanned, %d copies of the passphrase or salt", when, scanned>>20, len(found))
		for _, f := range found {
			t.Errorf("%s: %s", when, f)
		}
	}
	check("after the mount")
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.VmLck == 0 {
		t.Errorf("daemon VmLck 0 kB: the master key's pages are not locked")
	}
	t.Logf("daemon VmLck %d kB", st.VmLck>>10)
	m.aclAdd("ALLOW @mysqlbackup memscan.cnf /usr/bin/cat")
	check("after acl add")
	m.ms(0, append([]string{"category", "add", "memscan"}, m.creds()...)...)
	m.ms(0, append([]string{"mode", "set", "permissive"}, m.creds()...)...)
	m.ms(0, "mode", "set", "enforcing")
	check("after category add and mode permissive")
}

// secretForms maps each way a secret may sit in memory to its name.
func secretForms(secrets []string) map[string]string {
	forms := map[string]string{}
	for i, s := range secrets {
		name := fmt.Sprintf("secret %d", i)
		forms[s] = name
		forms[base64.StdEncoding.EncodeToString([]byte(s))] = name + " (base64)"
		forms[base64.StdEncoding.EncodeToString([]byte(s+"\n"))] = name + " (base64, with its newline)"
	}
	return forms
}

// scanMemory reads every readable mapping of pid through /proc/PID/mem
// and returns where the forms were found, and how many bytes it read.
func scanMemory(t *testing.T, pid int, forms map[string]string) ([]string, int64) {
	t.Helper()
	maps, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	mem, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		t.Fatalf("open daemon memory: %v", err)
	}
	defer mem.Close()
	var found []string
	var total int64
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && f[5] == "[vvar]" {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		buf := make([]byte, 1<<20)
		for off := start; off < end; off += uint64(len(buf)) {
			n := min(uint64(len(buf)), end-off)
			k, err := mem.ReadAt(buf[:n], int64(off))
			if err != nil && k == 0 {
				break // not backed (a guard page, an unreadable range)
			}
			total += int64(k)
			for form, name := range forms {
				// A form across two chunks is missed; the chunks are
				// 1 MiB and a form is tens of bytes.
				if i := bytes.Index(buf[:k], []byte(form)); i >= 0 {
					found = append(found, fmt.Sprintf("%s at %#x (%s)", name, off+uint64(i), strings.Join(f[5:], " ")))
				}
			}
		}
	}
	return found, total
}
