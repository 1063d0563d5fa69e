package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The POSIX suite runs the same calls on a plain directory and on the
// mount, in the same test, and expects the same results. Each check
// returns a short description of what it observed; where the mount
// cannot match a plain directory the difference is listed in
// knownDifferences and documented in docs/limitations.md.

type posixCheck struct {
	name string
	fn   func(t *testing.T, dir string) string
}

// knownDifferences: check name -> what the mount answers instead (the
// plain directory's answer is whatever the backing filesystem says).
var knownDifferences = map[string]string{
	// O_TMPFILE needs an unnamed inode the store cannot give a name IV.
	"O_TMPFILE": "operation not supported",
	// The mount is nodev: a device node on it cannot be opened (the open
	// would never reach the daemon's rules).
	"open a device node": "permission denied",
}

// asNobody runs a shell command as uid/gid 65534 and returns its error.
func asNobody(cmd string) error {
	c := exec.Command("/bin/sh", "-c", cmd)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func posixChecks() []posixCheck {
	return []posixCheck{
		{"write and O_TRUNC by the owner clear setuid/setgid", func(t *testing.T, dir string) string {
			os.Chmod(dir, 0o777)
			var out []string
			for _, step := range []string{"printf more >> F", ": > F"} {
				p := filepath.Join(dir, "suid")
				os.Remove(p)
				os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
				os.Chown(p, 65534, 65534)
				os.Chmod(p, 0o6775)
				err := asNobody(strings.ReplaceAll(step, "F", p))
				fi, _ := os.Stat(p)
				if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
					t.Errorf("%s in %s: %v, mode %v: setuid/setgid must be cleared", step, dir, err, fi.Mode())
				}
				out = append(out, fmt.Sprintf("%s: %v %04o", step, err, fi.Mode().Perm()|modeBits(fi.Mode())))
			}
			return strings.Join(out, "; ")
		}},
		{"fsync fdatasync syncfs", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "sync"))
			defer f.Close()
			f.Write([]byte("durable"))
			return fmt.Sprint(f.Sync(), unix.Fdatasync(int(f.Fd())), unix.Syncfs(int(f.Fd())))
		}},
		{"O_DIRECT", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "direct")
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
			if err != nil {
				return "open: " + err.Error()
			}
			defer unix.Close(fd)
			buf := alignedBuf(8192)
			copy(buf, bytes.Repeat([]byte("D"), 8192))
			n, err := unix.Pwrite(fd, buf, 4096)
			if err != nil {
				return "pwrite: " + err.Error()
			}
			rb := alignedBuf(8192)
			m, err := unix.Pread(fd, rb, 4096)
			return fmt.Sprint(n, m, err, bytes.Equal(buf, rb), fileSize(t, p))
		}},
		{"O_APPEND", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "append")
			os.WriteFile(p, []byte("abc"), 0o644)
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.WriteAt([]byte("zz"), 0) // Go refuses WriteAt on O_APPEND
			f.Write([]byte("def"))
			f.Close()
			b, _ := os.ReadFile(p)
			return string(b)
		}},
		{"O_EXCL", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "excl")
			_, err1 := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			_, err2 := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			return fmt.Sprint(err1 == nil, errors.Is(err2, os.ErrExist))
		}},
		{"O_TRUNC", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "trunc")
			os.WriteFile(p, bytes.Repeat([]byte("x"), 10000), 0o644)
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			f.Write([]byte("new"))
			f.Close()
			b, _ := os.ReadFile(p)
			return string(b)
		}},
		{"O_TMPFILE", func(t *testing.T, dir string) string {
			fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
			if err != nil {
				return errnoText(err)
			}
			unix.Close(fd)
			return "ok"
		}},
		{"POSIX and OFD locks between processes", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "lock")
			os.WriteFile(p, []byte("lock"), 0o644)
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			defer f.Close()
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
			if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
				return "parent lock: " + err.Error()
			}
			// Another process (flock(1) uses flock(2); use a fcntl lock
			// probe from a child of ours).
			posix := lockProbe(t, p, "posix")
			unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_UNLCK})
			ofd := unix.Flock_t{Type: unix.F_WRLCK}
			if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &ofd); err != nil {
				return "parent OFD lock: " + err.Error()
			}
			ofdRes := lockProbe(t, p, "ofd")
			// Both probes must have met the lock (EAGAIN), on either side.
			if !strings.Contains(posix, "unavailable") || !strings.Contains(ofdRes, "unavailable") {
				t.Errorf("a lock held by this process did not block another: %s / %s", posix, ofdRes)
			}
			return posix + " " + ofdRes
		}},
		{"rename over, renameat2", func(t *testing.T, dir string) string {
			a, b := filepath.Join(dir, "ra"), filepath.Join(dir, "rb")
			os.WriteFile(a, []byte("A"), 0o644)
			os.WriteFile(b, []byte("B"), 0o644)
			e1 := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE)
			e2 := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
			ca, _ := os.ReadFile(a)
			cb, _ := os.ReadFile(b)
			e3 := os.Rename(a, b)
			cb2, _ := os.ReadFile(b)
			_, e4 := os.Stat(a)
			return fmt.Sprint(errnoText(e1), e2, string(ca), string(cb), e3, string(cb2), errors.Is(e4, os.ErrNotExist))
		}},
		{"hard links and symlinks", func(t *testing.T, dir string) string {
			a := filepath.Join(dir, "la")
			os.WriteFile(a, []byte("linked"), 0o644)
			os.Link(a, filepath.Join(dir, "lb"))
			var st unix.Stat_t
			unix.Stat(filepath.Join(dir, "lb"), &st)
			os.Symlink("la", filepath.Join(dir, "ls"))
			tgt, _ := os.Readlink(filepath.Join(dir, "ls"))
			via, _ := os.ReadFile(filepath.Join(dir, "ls"))
			os.Remove(a)
			still, _ := os.ReadFile(filepath.Join(dir, "lb"))
			return fmt.Sprint(st.Nlink, tgt, string(via), string(still))
		}},
		{"chmod chown utimens", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "meta")
			os.WriteFile(p, []byte("m"), 0o644)
			os.Chmod(p, 0o4751)
			os.Chown(p, 999, 998)
			ts := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
			os.Chtimes(p, ts, ts)
			fi, _ := os.Stat(p)
			st := fi.Sys().(*syscall.Stat_t)
			return fmt.Sprintf("%v %d %d %d", fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		}},
		{"xattrs", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "xa")
			os.WriteFile(p, []byte("x"), 0o644)
			e1 := unix.Setxattr(p, "user.mysecure", []byte("value"), 0)
			buf := make([]byte, 64)
			n, e2 := unix.Getxattr(p, "user.mysecure", buf)
			lbuf := make([]byte, 256)
			ln, _ := unix.Listxattr(p, lbuf)
			e3 := unix.Removexattr(p, "user.mysecure")
			_, e4 := unix.Getxattr(p, "user.mysecure", buf)
			return fmt.Sprint(e1, string(buf[:max(n, 0)]), e2, strings.Contains(string(lbuf[:max(ln, 0)]), "user.mysecure"), e3, errnoText(e4))
		}},
		{"fallocate 0 and KEEP_SIZE", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "falloc"))
			defer f.Close()
			e1 := unix.Fallocate(int(f.Fd()), 0, 0, 100000)
			s1 := fileSize(t, f.Name())
			e2 := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 500000)
			s2 := fileSize(t, f.Name())
			b, _ := os.ReadFile(f.Name())
			return fmt.Sprint(e1, s1, e2, s2, bytes.Count(b, []byte{0}))
		}},
		{"fallocate PUNCH_HOLE", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "punch"))
			defer f.Close()
			f.Write(bytes.Repeat([]byte("p"), 100000))
			err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 8192, 8192)
			if err != nil {
				return errnoText(err)
			}
			return "ok"
		}},
		{"sparse files", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "sparse"))
			defer f.Close()
			f.WriteAt([]byte("end"), 3<<20)
			b, _ := os.ReadFile(f.Name())
			return fmt.Sprint(len(b), bytes.Count(b[:3<<20], []byte{0}), string(b[3<<20:]))
		}},
		{"sparse SEEK_HOLE", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "seek"))
			defer f.Close()
			f.WriteAt([]byte("end"), 3<<20)
			hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
			if err != nil {
				return errnoText(err)
			}
			if hole == 3<<20+3 {
				return "data to EOF (no holes)"
			}
			return fmt.Sprint("hole at ", hole)
		}},
		{"truncate up and down", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tr")
			os.WriteFile(p, bytes.Repeat([]byte("t"), 10000), 0o644)
			os.Truncate(p, 5000)
			os.Truncate(p, 9000)
			b, _ := os.ReadFile(p)
			return fmt.Sprint(len(b), bytes.Count(b, []byte("t")), bytes.Count(b, []byte{0}))
		}},
		{"statfs", func(t *testing.T, dir string) string {
			var s unix.Statfs_t
			err := unix.Statfs(dir, &s)
			return fmt.Sprint(err, s.Blocks > 0, s.Bsize > 0)
		}},
		{"shared mmap read and write", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "mmap")
			os.WriteFile(p, bytes.Repeat([]byte("."), 3*4096), 0o644)
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			defer f.Close()
			m, err := unix.Mmap(int(f.Fd()), 0, 3*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				return "mmap: " + err.Error()
			}
			copy(m[4000:], "MAPPED-WRITE")
			e1 := unix.Msync(m, unix.MS_SYNC)
			first := string(m[:3])
			unix.Munmap(m)
			b, _ := os.ReadFile(p)
			return fmt.Sprint(e1, first, string(b[4000:4012]))
		}},
		{"concurrent writers, different regions", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "conc")
			f := mustCreate(t, p)
			defer f.Close()
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					chunk := bytes.Repeat([]byte{byte('a' + w)}, 4096+w) // unaligned on purpose
					for i := 0; i < 64; i++ {
						f.WriteAt(chunk, int64(w)<<20+int64(i*len(chunk)))
					}
				}(w)
			}
			wg.Wait()
			b, _ := os.ReadFile(p)
			out := ""
			for w := 0; w < 4; w++ {
				n := 64 * (4096 + w)
				out += fmt.Sprint(bytes.Count(b[w<<20:w<<20+n], []byte{byte('a' + w)}) == n, " ")
			}
			return out
		}},
		{"create with mode 0, 0640 and 0777 under umask 022", func(t *testing.T, dir string) string {
			var out []string
			for _, mode := range []uint32{0, 0o640, 0o777} {
				p := filepath.Join(dir, fmt.Sprintf("mode%o", mode))
				fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, mode)
				if err != nil {
					out = append(out, "open: "+errnoText(err))
					continue
				}
				_, werr := unix.Write(fd, []byte("zero"))
				unix.Close(fd)
				var st unix.Stat_t
				unix.Stat(p, &st)
				// Root reads a mode 0 file (CAP_DAC_OVERRIDE), on the mount too.
				b, rerr := os.ReadFile(p)
				out = append(out, fmt.Sprintf("%04o %s %q %s", st.Mode&0o7777, errnoText(werr), b, errnoText(rerr)))
			}
			fi, _ := os.Stat(filepath.Join(dir, "mode0"))
			if fi != nil && fi.Mode().Perm() != 0 {
				t.Errorf("open(O_CREAT, 0) in %s made mode %v, want 0", dir, fi.Mode())
			}
			// mkdir with mode 0, and chmod of an open file to 0.
			d := filepath.Join(dir, "dir0")
			e1 := unix.Mkdir(d, 0)
			fi, _ = os.Stat(d)
			out = append(out, fmt.Sprint(errnoText(e1), " ", fi.Mode()))
			return strings.Join(out, "; ")
		}},
		{"mkfifo", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "fifo")
			if err := unix.Mkfifo(p, 0o640); err != nil {
				return "mkfifo: " + errnoText(err)
			}
			var st unix.Stat_t
			unix.Lstat(p, &st)
			// Data passes through the kernel pipe: open both ends.
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK, 0)
			if err != nil {
				return fmt.Sprintf("%o open: %s", st.Mode, errnoText(err))
			}
			defer unix.Close(fd)
			unix.Write(fd, []byte("through the pipe"))
			buf := make([]byte, 64)
			n, _ := unix.Read(fd, buf)
			ents, _ := os.ReadDir(dir)
			typ := ""
			for _, e := range ents {
				typ += e.Name() + ":" + e.Type().String() + " "
			}
			os.Rename(p, p+"2")
			e2 := os.Remove(p + "2")
			return fmt.Sprintf("%o %q %s %v", st.Mode, buf[:max(n, 0)], typ, e2)
		}},
		{"mknod character and block devices", func(t *testing.T, dir string) string {
			var out []string
			for _, d := range []struct {
				name string
				mode uint32
				dev  uint64
			}{{"null", unix.S_IFCHR | 0o620, unix.Mkdev(1, 3)}, {"loop", unix.S_IFBLK | 0o600, unix.Mkdev(7, 200)}} {
				p := filepath.Join(dir, d.name)
				if err := unix.Mknod(p, d.mode, int(d.dev)); err != nil {
					out = append(out, d.name+": "+errnoText(err))
					continue
				}
				var st unix.Stat_t
				unix.Lstat(p, &st)
				out = append(out, fmt.Sprintf("%s %o %d:%d", d.name, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev)))
				out = append(out, errnoText(os.Remove(p)))
			}
			return strings.Join(out, "; ")
		}},
		{"open a device node", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "null")
			if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				return "mknod: " + errnoText(err)
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return errnoText(err)
			}
			f.Close()
			return "opened"
		}},
		{"unix domain socket bind and connect", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				return "listen: " + errnoText(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err == nil {
					c.Write([]byte("hello over the socket"))
					c.Close()
				}
			}()
			var st unix.Stat_t
			unix.Lstat(p, &st)
			c, err := net.Dial("unix", p)
			if err != nil {
				return fmt.Sprintf("%o dial: %s", st.Mode&unix.S_IFMT, errnoText(err))
			}
			b, _ := io.ReadAll(c)
			c.Close()
			return fmt.Sprintf("%o %q", st.Mode&unix.S_IFMT, b)
		}},
		{"sparse file takes no space for its hole", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bighole")
			f := mustCreate(t, p)
			defer f.Close()
			f.Write([]byte("start"))
			e1 := f.Truncate(1 << 30)
			f.WriteAt([]byte("end"), 2<<30)
			var st unix.Stat_t
			unix.Fstat(int(f.Fd()), &st)
			b := make([]byte, 8)
			f.ReadAt(b, 1<<30-4)
			// Much less than the 2 GiB of zeros (blocks of 512 bytes).
			return fmt.Sprint(errnoText(e1), " ", st.Size, " ", st.Blocks*512 < 1<<20, " ", b)
		}},
		{"truncate to 999999999999999", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "huge")
			os.WriteFile(p, []byte("data"), 0o644)
			done := make(chan error, 1)
			go func() { done <- os.Truncate(p, 999999999999999) }()
			select {
			case err := <-done:
				b, _ := os.ReadFile(p)
				return fmt.Sprint(errnoText(err), " ", fileSize(t, p), " ", string(b))
			case <-time.After(10 * time.Second):
				// A correctness bound, not a performance measurement: the
				// call must not fill the gap with zeros.
				t.Errorf("truncate to 999999999999999 did not return in 10 s")
				<-done
				return "took more than 10 s"
			}
		}},
		{"SEEK_DATA and SEEK_HOLE around a 3 MiB hole", func(t *testing.T, dir string) string {
			f := mustCreate(t, filepath.Join(dir, "seek2"))
			defer f.Close()
			f.Write(bytes.Repeat([]byte("d"), 1<<20))
			f.WriteAt(bytes.Repeat([]byte("e"), 1<<20), 4<<20)
			fd := int(f.Fd())
			h0, e0 := unix.Seek(fd, 0, unix.SEEK_HOLE)
			d1, e1 := unix.Seek(fd, 2<<20, unix.SEEK_DATA)
			h2, e2 := unix.Seek(fd, 4<<20, unix.SEEK_HOLE)
			_, e3 := unix.Seek(fd, 5<<20, unix.SEEK_DATA)
			return fmt.Sprint(h0, errnoText(e0), d1, errnoText(e1), h2, errnoText(e2), errnoText(e3))
		}},
		{"fallocate PUNCH_HOLE frees space and reads zeros", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "punch2")
			f := mustCreate(t, p)
			defer f.Close()
			f.Write(bytes.Repeat([]byte("p"), 4<<20))
			var before, after unix.Stat_t
			unix.Fstat(int(f.Fd()), &before)
			// Unaligned on purpose: partial 4 KiB blocks at both ends.
			err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1000, 3<<20)
			unix.Fstat(int(f.Fd()), &after)
			b, _ := os.ReadFile(p)
			zeros := bytes.Count(b, []byte{0})
			ps := bytes.Count(b, []byte("p"))
			hole, _ := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
			return fmt.Sprint(errnoText(err), " ", len(b), zeros, ps, " freed>2MiB=", (before.Blocks-after.Blocks)*512 > 2<<20, " hole<1MiB=", hole < 1<<20)
		}},
		{"deep path of long names near PATH_MAX", func(t *testing.T, dir string) string {
			// Components of 170 bytes up to 3800 bytes in all: legal in
			// plaintext; encrypted (235 bytes each, still short names) the
			// store path is longer than PATH_MAX.
			cur := dir
			for i := 0; len(cur)+171 < 3800; i++ {
				cur = filepath.Join(cur, strings.Repeat(string(rune('a'+i%26)), 170))
				if err := os.Mkdir(cur, 0o755); err != nil {
					return fmt.Sprintf("mkdir at depth %d (%d bytes): %s", i, len(cur), errnoText(err))
				}
			}
			f := filepath.Join(cur, "file")
			var out []string
			out = append(out, errnoText(os.WriteFile(f, []byte("deep"), 0o644)))
			_, err := os.Stat(f)
			out = append(out, errnoText(err))
			out = append(out, errnoText(os.Truncate(f, 2)))
			out = append(out, errnoText(os.Rename(f, f+"2")))
			b, err := os.ReadFile(f + "2")
			out = append(out, string(b)+errnoText(err))
			out = append(out, errnoText(os.Symlink("file2", f+"l")))
			l, err := os.Readlink(f + "l")
			out = append(out, l+errnoText(err))
			out = append(out, errnoText(unix.Setxattr(f+"2", "user.deep", []byte("x"), 0)))
			out = append(out, errnoText(os.Remove(f+"2")), errnoText(os.Remove(f+"l")))
			ents, err := os.ReadDir(cur)
			out = append(out, fmt.Sprint(len(ents), errnoText(err)))
			out = append(out, errnoText(os.RemoveAll(filepath.Join(dir, strings.Repeat("a", 170)))))
			return strings.Join(out, " ")
		}},
		{"1000 files open at once", func(t *testing.T, dir string) string {
			var files []*os.File
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			for i := 0; i < 1000; i++ {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("many%04d", i)))
				if err != nil {
					return fmt.Sprint("create ", i, ": ", err)
				}
				fmt.Fprintf(f, "file %d", i)
				files = append(files, f)
			}
			ok := 0
			for i, f := range files {
				b := make([]byte, 20)
				n, _ := f.ReadAt(b, 0)
				if string(b[:n]) == fmt.Sprintf("file %d", i) {
					ok++
				}
			}
			return fmt.Sprint(ok)
		}},
	}
}

// TestPOSIX runs every check on a plain directory and on the mount.
func TestPOSIX(t *testing.T) {
	m := newMount(t)
	// This test binary (and its lock-probe children, the same binary) is
	// the program allowed to read and write @mysql.
	self, _ := os.Executable()
	m.aclAdd("ALLOW @mysql * " + self)
	// The shell writes as another user in the setuid check.
	if sh, err := filepath.EvalSymlinks("/bin/sh"); err == nil {
		m.aclAdd("ALLOW @mysql * " + sh)
	}
	plainRoot := filepath.Join(m.dir, "plain")
	mountRoot := filepath.Join(m.mnt, "mysql", "posix")
	os.MkdirAll(plainRoot, 0o755)
	if err := os.MkdirAll(mountRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range posixChecks() {
		t.Run(c.name, func(t *testing.T) {
			pd := filepath.Join(plainRoot, fmt.Sprint(i))
			md := filepath.Join(mountRoot, fmt.Sprint(i))
			os.Mkdir(pd, 0o755)
			os.Mkdir(md, 0o755)
			want := c.fn(t, pd)
			got := c.fn(t, md)
			if known, ok := knownDifferences[c.name]; ok && got == known {
				t.Logf("documented difference: plain %q, mount %q", want, got)
				return
			}
			if got != want {
				t.Fatalf("plain directory: %q\nmount:           %q", want, got)
			}
		})
	}
}

// lockProbe runs a child process (this test binary) that tries a lock of
// kind ("posix" or "ofd") on p and reports the result.
func lockProbe(t *testing.T, p, kind string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockProbeHelper$")
	cmd.Env = append(os.Environ(), "MYSECURE_LOCK_PROBE="+kind+":"+p)
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(line, "probe: "); ok {
			return r
		}
	}
	return "probe failed: " + string(out)
}

// TestLockProbeHelper is not a test: it is the child of lockProbe.
func TestLockProbeHelper(t *testing.T) {
	spec := os.Getenv("MYSECURE_LOCK_PROBE")
	if spec == "" {
		return
	}
	kind, p, _ := strings.Cut(spec, ":")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		fmt.Println("probe: open", errnoText(err))
		return
	}
	defer f.Close()
	cmd := unix.F_SETLK
	if kind == "ofd" {
		cmd = unix.F_OFD_SETLK
	}
	err = unix.FcntlFlock(f.Fd(), cmd, &unix.Flock_t{Type: unix.F_WRLCK})
	fmt.Println("probe:", kind, errnoText(err))
}

func mustCreate(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func errnoText(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// alignedBuf returns a 4096-aligned buffer for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)
	if off == 4096 {
		off = 0
	}
	return b[off : off+n]
}

func modeBits(m os.FileMode) os.FileMode {
	var b os.FileMode
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	return b
}
