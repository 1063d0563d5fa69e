package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// entry is what must survive a move: everything ls -l, stat and getfattr show.
type entry struct {
	typ      fs.FileMode
	mode     fs.FileMode
	uid, gid uint32
	size     int64
	sum      string
	mtime    int64
	link     string // symlink target
	xattrs   string
	group    string // first path of its hard-link group
}

func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	seen := map[uint64]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{typ: fi.Mode().Type(), mode: fi.Mode(), uid: st.Uid, gid: st.Gid, mtime: fi.ModTime().UnixNano()}
		if fi.Mode().IsRegular() {
			e.size = fi.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			e.sum = hex.EncodeToString(s[:])
			if first, ok := seen[st.Ino]; ok {
				e.group = first
			} else {
				seen[st.Ino] = rel
				e.group = rel
			}
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			e.link, _ = os.Readlink(p)
		}
		e.xattrs = xattrs(p)
		if fi.IsDir() {
			e.mtime = 0 // directory times change when the test itself looks around
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		v := make([]byte, 4096)
		k, _ := unix.Lgetxattr(p, name, v)
		parts = append(parts, name+"="+string(v[:max(k, 0)]))
	}
	return strings.Join(parts, ";")
}

func compareSnapshots(t *testing.T, before, after map[string]entry) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			t.Fatalf("%s is missing after the move", p)
		}
		if p == "." {
			b.mtime, a.mtime = 0, 0
		}
		if a != b {
			t.Fatalf("%s differs after the move:\nbefore %+v\nafter  %+v", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Fatalf("%s appeared after the move", p)
		}
	}
}
