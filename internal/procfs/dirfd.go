package procfs

import (
	"slices"

	"golang.org/x/sys/unix"
)

// OpenDir opens the directory of pid and returns its descriptor (close
// it with unix.Close). Files read through it belong to that very process:
// once it exits, reads fail even if the pid is reused.
func (f FS) OpenDir(pid int) (int, error) {
	for {
		fd, err := unix.Open(f.Path(pid, ""), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// ReadAt reads the file name under dirfd, at most limit bytes (more means
// truncated is true). It uses plain system calls: /proc files cannot be
// polled, and hot paths (every open through the mount) pay for this.
func ReadAt(dirfd int, name string, limit int) (data []byte, truncated bool, err error) {
	var fd int
	for {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf[:limit], true, nil
			}
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			return buf, false, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// ReadlinkAt reads the symbolic link name under dirfd.
func ReadlinkAt(dirfd int, name string) (string, error) {
	for size := 512; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<20 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// maxStatusFile bounds the stat and status files read through a
// descriptor.
const maxStatusFile = 64 << 10

// StatAt reads the stat file through a descriptor from OpenDir.
func StatAt(dirfd int) (Stat, error) {
	data, _, err := ReadAt(dirfd, "stat", maxStatusFile)
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(data)
}

// StatusAt reads the status file through a descriptor from OpenDir.
func StatusAt(dirfd int) (Status, error) {
	data, _, err := ReadAt(dirfd, "status", maxStatusFile)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(data)
}
