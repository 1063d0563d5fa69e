package fds

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func cloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fd %d: %v", fd, err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

func TestCloseInherited(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Two descriptors without close-on-exec, as a parent leaves them.
	leaked, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kept)
	closed, err := CloseInherited(kept)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(leaked), unix.F_GETFD, 0); err == nil {
		t.Errorf("fd %d (inherited) still open; closed %v", leaked, closed)
	}
	if !cloexec(t, kept) {
		t.Errorf("kept fd %d not marked close-on-exec", kept)
	}
	if !cloexec(t, int(f.Fd())) {
		t.Errorf("package os's own fd lost close-on-exec")
	}
}

func TestCloseOnExecAll(t *testing.T) {
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY, 0) // no O_CLOEXEC, as go-fuse opens /dev/fuse
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	marked, err := CloseOnExecAll()
	if err != nil {
		t.Fatal(err)
	}
	if !cloexec(t, fd) {
		t.Fatalf("fd %d still inheritable; marked %v", fd, marked)
	}
}
