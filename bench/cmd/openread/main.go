// Command openread is the "allowed binary" of the access-rule benchmark
// (bench/acl.sh, bench/cmd/aclbench): it lists the regular files of DIR
// once (not timed), then does N times open(2), read(2) of the whole file
// until end of file, close(2), taking the files round robin in name order,
// and prints one JSON line on standard output:
//
//	{"opens":10000,"files":1000,"bytes":20480000,"elapsed_ns":123456789,"opens_per_s":81000.5}
//
// It does nothing else: no other output, no other files. Errors go to
// standard error as one line and exit 1; bad usage exits 2.
//
//	usage: openread DIR N
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// result is the JSON line printed on success.
type result struct {
	Opens     int     `json:"opens"`
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`
	ElapsedNs int64   `json:"elapsed_ns"`
	OpensPerS float64 `json:"opens_per_s"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: openread DIR N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "openread: error: N must be a positive integer: %q\n", os.Args[2])
		os.Exit(2)
	}
	// One thread does every open, like a single-threaded C program: the
	// FUSE request then names the process's main thread.
	runtime.LockOSThread()
	res, err := run(os.Args[1], n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openread: error: %v\n", err)
		os.Exit(1)
	}
	line, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openread: error: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(string(line))
}

func run(dir string, n int) (result, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return result{}, fmt.Errorf("failed to list %s: %w", dir, err)
	}
	var paths []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	if len(paths) == 0 {
		return result{}, fmt.Errorf("no regular files in %s", dir)
	}
	slices.Sort(paths)

	buf := make([]byte, 64<<10)
	var total int64
	start := time.Now()
	for i := range n {
		p := paths[i%len(paths)]
		fd, err := open(p)
		if err != nil {
			return result{}, fmt.Errorf("failed to open %s (open %d of %d): %w", p, i+1, n, err)
		}
		for {
			k, err := syscall.Read(fd, buf)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				syscall.Close(fd)
				return result{}, fmt.Errorf("failed to read %s: %w", p, err)
			}
			if k == 0 {
				break
			}
			total += int64(k)
		}
		if err := syscall.Close(fd); err != nil {
			return result{}, fmt.Errorf("failed to close %s: %w", p, err)
		}
	}
	elapsed := time.Since(start)
	return result{
		Opens:     n,
		Files:     len(paths),
		Bytes:     total,
		ElapsedNs: elapsed.Nanoseconds(),
		OpensPerS: float64(n) / elapsed.Seconds(),
	}, nil
}

func open(p string) (int, error) {
	for {
		fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}
