// Package fds keeps a process's descriptors to itself: it closes what a
// process inherited by accident and marks what it opened close-on-exec,
// so that the programs it starts get only the descriptors handed to them
// on purpose (exec.Cmd's Stdin, Stdout, Stderr and ExtraFiles).
//
// It reads /proc/self/fd (through internal/procfs) and changes descriptor flags; it never prints.
package fds

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/procfs"
)

// list returns the process's open descriptors above 2 (including, for
// the moment of the listing, the one that reads the directory).
func list() ([]int, error) {
	all, err := procfs.SelfFDs()
	if err != nil {
		return nil, fmt.Errorf("failed to list open descriptors: %w", err)
	}
	var out []int
	for _, n := range all {
		if n > 2 {
			out = append(out, n)
		}
	}
	return out, nil
}

// CloseInherited closes every descriptor above 2 that has no
// close-on-exec flag, except those in keep, and marks those in keep
// close-on-exec. It returns what it closed.
//
// Call it first thing in a process that must not pass on what its parent
// left open. Everything the Go runtime and package os open carries
// close-on-exec, so a descriptor without it was inherited (or opened by
// a raw syscall that forgot the flag, which is the same leak).
func CloseInherited(keep ...int) ([]int, error) {
	open, err := list()
	if err != nil {
		return nil, err
	}
	var closed []int
	for _, fd := range open {
		if slices.Contains(keep, fd) {
			unix.CloseOnExec(fd)
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // gone (the listing's own descriptor) or already private
		}
		if err := unix.Close(fd); err == nil {
			closed = append(closed, fd)
		}
	}
	return closed, nil
}

// CloseOnExecAll marks every open descriptor above 2 close-on-exec. Call
// it after a library opened descriptors without the flag (go-fuse opens
// /dev/fuse so); it returns the descriptors it had to mark.
func CloseOnExecAll() ([]int, error) {
	open, err := list()
	if err != nil {
		return nil, err
	}
	var marked []int
	for _, fd := range open {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err != nil {
			return marked, fmt.Errorf("failed to set close-on-exec on fd %d: %w", fd, err)
		}
		marked = append(marked, fd)
	}
	return marked, nil
}
