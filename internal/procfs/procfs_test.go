package procfs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func statLine(comm string) string {
	return "4242 (" + comm + ") S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
}

func TestParseStat(t *testing.T) {
	for _, comm := range []string{"mysqld", "my prog", "a) S 1 2 3 (", ")", "((", "x)y) z"} {
		t.Run(comm, func(t *testing.T) {
			s, err := ParseStat([]byte(statLine(comm)))
			if err != nil {
				t.Fatal(err)
			}
			want := Stat{Pid: 4242, Comm: comm, State: 'S', PPid: 17, Pgid: 4242, StartTime: 987654}
			if s != want {
				t.Fatalf("got %+v, want %+v", s, want)
			}
		})
	}
	for _, bad := range []string{"", "12 no parens", "12 (x) S 1", "12 (x) S a 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5", "x (y) S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
	if s, _ := ParseStat([]byte("9 (z) Z 1 9 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5")); !s.Zombie() {
		t.Error("state Z is not a zombie")
	}
}

func TestParseStatus(t *testing.T) {
	data := "Name:\tmariadbd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\nPid:\t815\n" +
		"Uid:\t110\t111\t112\t113\nGid:\t120\t121\t122\t123\nGroups:\t4 27 120 \n" +
		"VmHWM:\t  204800 kB\nVmLck:\t       8 kB\nVmRSS:\t  102400 kB\nThreads:\t37\n"
	s, err := ParseStatus([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "mariadbd" || s.Tgid != 812 || s.Threads != 37 ||
		!slices.Equal(s.Uid, []uint32{110, 111, 112, 113}) || !slices.Equal(s.Gid, []uint32{120, 121, 122, 123}) ||
		!slices.Equal(s.Groups, []uint32{4, 27, 120}) || s.VmRSS != 102400<<10 || s.VmHWM != 204800<<10 || s.VmLck != 8<<10 {
		t.Fatalf("got %+v", s)
	}
	kt, err := ParseStatus([]byte("Name:\tkthreadd\nTgid:\t2\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nThreads:\t1\n"))
	if err != nil || kt.VmRSS != 0 || len(kt.Groups) != 0 {
		t.Fatalf("kernel thread: %+v, %v", kt, err)
	}
	if none, err := ParseStatus([]byte("Name:\tx\n")); err != nil || none.Uid != nil {
		t.Fatalf("no Uid line: %+v, %v", none, err)
	}
	for _, bad := range []string{"Uid:\tx 0 0 0\n", "Uid:\n", "Tgid:\tz\n", "VmRSS:\t12 MB\n", "Groups:\t1 b\n"} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q): no error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:             "/plain",
		`/a\040b`:            "/a b",
		`/tab\011x`:          "/tab\tx",
		`/nl\012x`:           "/nl\nx",
		`/back\134slash`:     `/back\slash`,
		`/end\040`:           "/end ",
		`/short\04`:          `/short\04`,
		`/not\08x`:           `/not\08x`,
		`/big\777`:           `/big\777`,
		`/two\040\040spaces`: "/two  spaces",
		`\134040`:            `\040`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	data := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
		"36 22 0:45 / /var/lib/my\\040data rw,nosuid,nodev shared:20 master:3 - fuse.mysecure my\\134src rw,user_id=0\n" +
		"37 22 0:46 /sub /mnt/t\\011b\\012c rw - tmpfs tmpfs rw\n" +
		"short line\n\n"
	got := ParseMountinfo([]byte(data))
	want := []Mount{
		{ID: 22, Parent: 1, Dev: "8:1", Root: "/", Point: "/", Options: "rw,relatime", FSType: "ext4", Source: "/dev/sda1"},
		{ID: 36, Parent: 22, Dev: "0:45", Root: "/", Point: "/var/lib/my data", Options: "rw,nosuid,nodev", FSType: "fuse.mysecure", Source: `my\src`},
		{ID: 37, Parent: 22, Dev: "0:46", Root: "/sub", Point: "/mnt/t\tb\nc", Options: "rw", FSType: "tmpfs", Source: "tmpfs"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if m, ok := MountAt(got, "/var/lib/my data/"); !ok || m.ID != 36 {
		t.Fatalf("MountAt: %+v %v", m, ok)
	}
	if _, ok := MountAt(got, "/var"); ok {
		t.Fatal("MountAt(/var) found a mount")
	}
}

func TestParseCgroup(t *testing.T) {
	got := ParseCgroup([]byte("0::/system.slice/mariadb.service\n4:cpu,cpuacct:/x\nbad\n"))
	want := []Cgroup{{0, "", "/system.slice/mariadb.service"}, {4, "cpu,cpuacct", "/x"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestSplitNul(t *testing.T) {
	if got := SplitNul([]byte("a\x00b c\x00\x00")); !slices.Equal(got, []string{"a", "b c"}) {
		t.Fatalf("got %q", got)
	}
	if got := SplitNul(nil); got != nil {
		t.Fatalf("got %q", got)
	}
}

// TestStandIn reads a stand-in tree through At.
func TestStandIn(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "77")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "stat"), []byte(statLine("sh) (x")), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte("/bin/sh\x00-c\x00echo hi\x00"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "environ"), []byte("A=1\x00\x00B=2\x00"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "comm"), []byte("sh\n"), 0o644))
	must(os.Symlink("/usr/bin/dash (deleted)", filepath.Join(dir, "exe")))
	must(os.Symlink("/tmp", filepath.Join(dir, "cwd")))
	must(os.Symlink("pipe:[1]", filepath.Join(dir, "fd", "1")))
	must(os.Symlink("/var/log/x", filepath.Join(dir, "fd", "10")))
	must(os.Mkdir(filepath.Join(root, "self"), 0o755))
	fs := At(root)
	if pids, err := fs.Pids(); err != nil || !slices.Equal(pids, []int{77}) {
		t.Fatalf("Pids: %v %v", pids, err)
	}
	if s, err := fs.Stat(77); err != nil || s.Comm != "sh) (x" || s.StartTime != 987654 {
		t.Fatalf("Stat: %+v %v", s, err)
	}
	if a, err := fs.Cmdline(77); err != nil || !slices.Equal(a, []string{"/bin/sh", "-c", "echo hi"}) {
		t.Fatalf("Cmdline: %q %v", a, err)
	}
	if e, err := fs.Environ(77); err != nil || !slices.Equal(e, []string{"A=1", "B=2"}) {
		t.Fatalf("Environ: %q %v", e, err)
	}
	if c, err := fs.Comm(77); err != nil || c != "sh" {
		t.Fatalf("Comm: %q %v", c, err)
	}
	if e, err := fs.Exe(77); err != nil || TrimDeleted(e) != "/usr/bin/dash" {
		t.Fatalf("Exe: %q %v", e, err)
	}
	if d, err := fs.Cwd(77); err != nil || d != "/tmp" {
		t.Fatalf("Cwd: %q %v", d, err)
	}
	if fds, err := fs.FDs(77); err != nil || !slices.Equal(fds, []int{1, 10}) {
		t.Fatalf("FDs: %v %v", fds, err)
	}
	if l, err := fs.FDLink(77, 10); err != nil || l != "/var/log/x" {
		t.Fatalf("FDLink: %q %v", l, err)
	}
	if _, err := fs.Stat(78); err == nil {
		t.Fatal("Stat of a missing pid: no error")
	}
}

// TestSelf reads this very process from /proc.
func TestSelf(t *testing.T) {
	pid := os.Getpid()
	st, err := ReadStat(pid)
	if err != nil || st.Pid != pid || st.PPid != os.Getppid() || st.StartTime == 0 {
		t.Fatalf("ReadStat: %+v %v", st, err)
	}
	ss, err := ReadStatus(pid)
	if err != nil || ss.Tgid != pid || len(ss.Uid) != 4 || ss.Uid[0] != uint32(os.Getuid()) || ss.Threads < 1 || ss.VmRSS == 0 {
		t.Fatalf("ReadStatus: %+v %v", ss, err)
	}
	exe, _ := os.Executable()
	if got, err := Exe(pid); err != nil || got != exe {
		t.Fatalf("Exe: %q %v, want %q", got, err, exe)
	}
	if args, err := Cmdline(pid); err != nil || len(args) == 0 {
		t.Fatalf("Cmdline: %q %v", args, err)
	}
	fds, err := SelfFDs()
	if err != nil || !slices.Contains(fds, 0) {
		t.Fatalf("SelfFDs: %v %v", fds, err)
	}
	if cg, err := ReadCgroup(pid); err != nil || len(cg) == 0 {
		t.Fatalf("ReadCgroup: %v %v", cg, err)
	}
	mounts, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := MountAt(mounts, "/"); !ok {
		t.Fatal("no mount at /")
	}
	dirfd, err := std.OpenDir(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	// The state (R, S ...) may change between the two reads.
	if s, err := StatAt(dirfd); err != nil || s.Pid != st.Pid || s.PPid != st.PPid || s.StartTime != st.StartTime || s.Comm != st.Comm {
		t.Fatalf("StatAt: %+v %v", s, err)
	}
	if l, err := ReadlinkAt(dirfd, "exe"); err != nil || l != exe {
		t.Fatalf("ReadlinkAt: %q %v", l, err)
	}
	if _, err := StatusAt(dirfd); err != nil {
		t.Fatal(err)
	}
	if SelfFDPath(3) != "/proc/self/fd/3" || FDPath(12, 2) != "/proc/12/fd/2" || Path(5, "") != "/proc/5" {
		t.Fatal("paths")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine("a) b")))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseStat(b) })
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("36 22 0:45 / /a\\040b rw - fuse x rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range ParseMountinfo(b) {
			_ = Unescape(m.Point)
		}
	})
}

// FuzzParseStatComm: /proc/PID/stat with any command name (a process
// chooses its own, ')' and spaces included) parses to the fields after the
// last ')', and any input is refused or parsed without a panic.
func FuzzParseStatComm(f *testing.F) {
	f.Add("cat")
	f.Add("a) b) c")
	f.Add("x")
	f.Fuzz(func(t *testing.T, comm string) {
		line := "4242 (" + comm + ") S 77 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 31337 0 0"
		st, err := ParseStat([]byte(line))
		if err != nil {
			t.Fatalf("comm %q: %v", comm, err)
		}
		if st.PPid != 77 || st.StartTime != 31337 {
			t.Fatalf("comm %q confused the parser: ppid %d start %d", comm, st.PPid, st.StartTime)
		}
		ParseStat([]byte(comm))
	})
}
