package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// storeEntries counts what is in the store directory that holds the
// backups (complete and partial): a failed run must leave nothing there.
func storeEntries(t *testing.T, backupsDir string) int {
	t.Helper()
	ents, err := os.ReadDir(backupsDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if e.Name() != "ms.diriv" {
			n++
		}
	}
	return n
}

func TestBackupFailures(t *testing.T) {
	b := newBackupEnv(t)
	good := b.backup(t, "--databases", "shop")
	backupsDir := filepath.Dir(good.StorePath)
	catalog := ids(b.catalog(t))
	unchanged := func(t *testing.T, what string) {
		t.Helper()
		if got := ids(b.catalog(t)); got != catalog {
			t.Fatalf("%s changed the catalog: %s, was %s", what, got, catalog)
		}
		if n := storeEntries(t, backupsDir); n != 1 {
			t.Fatalf("%s left %d entries in the store's backup directory, want 1", what, n)
		}
	}

	t.Run("wrong MySQL password", func(t *testing.T) {
		b.setCredentials(t, "wrong", "not-the-password")
		_, errOut := b.ms(t, 11, "backup", "--credentials", "wrong")
		if !strings.Contains(errOut, "Access denied") || !strings.Contains(errOut, "hint:") {
			t.Fatalf("stderr: %s", errOut)
		}
		unchanged(t, "a refused login")
	})
	t.Run("unknown credentials", func(t *testing.T) {
		_, errOut := b.ms(t, 6, "backup", "--credentials", "nosuch")
		if !strings.Contains(errOut, `no credentials named "nosuch"`) {
			t.Fatalf("stderr: %s", errOut)
		}
	})
	t.Run("tool missing", func(t *testing.T) {
		saved := b.vars
		defer func() { b.vars = saved }()
		b.vars = append(append([]string(nil), saved...), "MYSECURE_DUMP_TOOL=/nonexistent/mariadb-dump")
		_, errOut := b.ms(t, 10, "backup")
		if !strings.Contains(errOut, "program not found: /nonexistent/mariadb-dump") {
			t.Fatalf("stderr: %s", errOut)
		}
		unchanged(t, "a missing tool")
	})
	dumpBin, _ := exec.LookPath("mariadb-dump")
	script := func(name, body string) string {
		p := filepath.Join(b.dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("tool killed mid-stream", func(t *testing.T) {
		// The tool writes 2 MB of a real dump, then is killed.
		tool := script("killed-dump", `[ "$1" = --version ] && exec `+dumpBin+` --version
echo "dumping, then killed" >&2
`+dumpBin+` "$@" | head -c 2000000
kill -9 $$`)
		saved := b.vars
		defer func() { b.vars = saved }()
		b.vars = append(append([]string(nil), saved...), "MYSECURE_DUMP_TOOL="+tool)
		_, errOut := b.ms(t, 10, "backup")
		if !strings.Contains(errOut, "signal: killed") || !strings.Contains(errOut, "dumping, then killed") {
			t.Fatalf("stderr should name the signal and end with the tool's stderr: %s", errOut)
		}
		unchanged(t, "a killed tool")
	})
	t.Run("tool exits 0 with a truncated dump", func(t *testing.T) {
		tool := script("short-dump", `[ "$1" = --version ] && exec `+dumpBin+` --version
`+dumpBin+` "$@" | head -c 1000000
exit 0`)
		saved := b.vars
		defer func() { b.vars = saved }()
		b.vars = append(append([]string(nil), saved...), "MYSECURE_DUMP_TOOL="+tool)
		_, errOut := b.ms(t, 10, "backup")
		if !strings.Contains(errOut, "Dump completed") {
			t.Fatalf("stderr should say the trailer is missing: %s", errOut)
		}
		unchanged(t, "a truncated dump")
	})
	t.Run("unknown ID", func(t *testing.T) {
		for _, args := range [][]string{{"restore", "20260101T000000Z-abcd"}, {"backup", "verify", "20260101T000000Z-abcd"}, {"backup", "show", "x"}, {"backup", "delete", "20260101T000000Z-abcd"}} {
			_, errOut := b.ms(t, 6, args...)
			if !strings.Contains(errOut, "no backup") {
				t.Fatalf("%v: %s", args, errOut)
			}
		}
		unchanged(t, "unknown IDs")
	})
	t.Run("corrupt backup", func(t *testing.T) {
		ctx := context.Background()
		// The data file is the larger of the backup's two files.
		ents, _ := os.ReadDir(good.StorePath)
		var data string
		var size int64
		for _, e := range ents {
			fi, _ := e.Info()
			if e.Name() != "ms.diriv" && fi.Size() > size {
				data, size = filepath.Join(good.StorePath, e.Name()), fi.Size()
			}
		}
		orig, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), orig...)
		bad[len(bad)/2] ^= 0x20
		os.WriteFile(data, bad, 0o600)
		defer os.WriteFile(data, orig, 0o600)

		out, errOut := b.ms(t, 5, "backup", "verify", good.ID)
		if !strings.Contains(out+errOut, "authentication failed") || !strings.Contains(errOut, "corrupt") {
			t.Fatalf("verify of a corrupt backup: %s %s", out, errOut)
		}
		b.ms(t, 5, "backup", "verify", "--all")
		if _, err := b.srv.Client(ctx, "INSERT INTO shop.audit_log (msg) VALUES ('after the backup')"); err != nil {
			t.Fatal(err)
		}
		before := dbState(t, b.srv)
		_, errOut = b.ms(t, 5, "restore", good.ID)
		if !strings.Contains(errOut, "nothing was restored") {
			t.Fatalf("restore of a corrupt backup: %s", errOut)
		}
		sameState(t, "database after a refused restore", before, dbState(t, b.srv))
		unchanged(t, "a corrupt backup")
	})
	t.Run("disk full", func(t *testing.T) {
		small := filepath.Join(b.dir, "small")
		os.MkdirAll(small, 0o700)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		defer exec.Command("umount", small).Run()
		s2 := &bkEnv{env: &env{t: t, dir: small, store: filepath.Join(small, "store"), state: b.state, creds: b.creds}, srv: b.srv, password: b.password}
		s2.vars = []string{"MYSECURE_STORE=" + s2.store, "MYSECURE_SOCKET=" + filepath.Join(small, "none.sock"), "MYSECURE_JOB_SOCKET=" + filepath.Join(small, "none-jobs.sock"), "MYSECURE_STATE_DIR=" + b.state}
		s2.env.run(0, nil, nil, append([]string{"--store", s2.store, "init", "--kdf-memory", "8", "--kdf-time", "1"}, b.creds...)[2:]...)
		s2.setCredentials(t, "default", b.password)
		var before syscall.Statfs_t
		syscall.Statfs(small, &before)
		_, errOut := s2.ms(t, 1, "backup", "--databases", "shop")
		if !strings.Contains(errOut, "full") {
			t.Fatalf("disk full: %s", errOut)
		}
		var after syscall.Statfs_t
		syscall.Statfs(small, &after)
		// The catalog's directories (a name IV each) are new; data is not.
		filepath.Walk(s2.store, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Size() > 1024 {
				t.Errorf("left behind by the failed backup: %s (%d bytes)", p, fi.Size())
			}
			return nil
		})
		if after.Bfree+4 < before.Bfree {
			out, _ := exec.Command("find", small, "-ls").CombinedOutput()
			t.Fatalf("the failed backup left %d blocks behind:\n%s", before.Bfree-after.Bfree, out)
		}
		if c := s2.catalog(t); len(c) != 0 {
			t.Fatalf("catalog after disk full: %v", ids(c))
		}
		// With room again, the same store works.
		exec.Command("mount", "-o", "remount,size=64m", small).Run()
		s2.backup(t, "--databases", "crm-2")
	})
}
