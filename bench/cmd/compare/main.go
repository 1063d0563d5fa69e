// Command compare runs the same workloads on a plain directory, on a
// mysecure mount and on gocryptfs in one run and prints medians and ratios
// as Markdown (issue: "side-by-side benchmark").
//
// Targets, each in its own directory below -work (on the real disk, not
// tmpfs, where a datadir would live):
//
//   - plain: a directory on the work dir's file system;
//   - mysecure: bin/mysecure init + mount (the detached daemon), enforcing
//     mode, with one ALLOW rule in @mysql for each program the workloads
//     run there (dd, cp, cat, rm, mariadbd); the work area is the @mysql
//     category directory;
//   - gocryptfs: the Debian gocryptfs with its default options
//     (-allow_other so that mysqld can reach it), run by this program with
//     -fg so that its pid and peak RSS are known;
//   - mysecure-admin: a second mysecure volume in admin mode and without
//     rules (everything allowed, every open still decided and logged as a
//     would-be denial): the file workloads only, to show what the audit
//     records cost;
//   - mysecure-b: like mysecure, but another binary (-mysecure-b) and/or
//     extra environment (-mysecure-b-env): an A/B of a change in one run;
//   - gofuse-loopback and bindfs, for reference: FUSE servers without
//     encryption or access control, run in the foreground like gocryptfs.
//     gofuse-loopback is go-fuse's own example/loopback (-loopback, built
//     by compare.sh from the go-fuse version mysecure uses), bindfs a C
//     passthrough over libfuse (Debian). They show what any FUSE server
//     costs on this machine; the report adds their ratios to plain.
//
// One round of the file workloads, per target (targets rotate order from
// round to round; `sync` before every timed step):
//
//	seqwrite   dd if=/dev/zero of=D/seq.bin bs=1M count=SIZE conv=fsync
//	           remount as the issue defines it: FUSE unmount + mount (the
//	           kernel's plaintext pages are gone, the store's ciphertext may
//	           still be in the page cache); plain: sync + drop_caches
//	seqread    dd if=D/seq.bin of=/dev/null bs=1M
//	           remount with everything cold: FUSE unmount, sync + drop_caches,
//	           mount (plain: sync + drop_caches)
//	seqread-cold  the same read from the disk: on a VM that returns freed
//	           memory to its host this also pays for first touches of fresh
//	           page-cache pages, twice on FUSE (ciphertext and plaintext)
//	           rm D/seq.bin; the source tree is read once (untimed) to warm it
//	cp         cp -a TREE D/tree
//	           remount with drop_caches
//	lsR        ls -lR D/tree
//	readall    find D/tree -type f -exec cat {} +   (output through a pipe)
//	rm         rm -rf D/tree
//
// Then MariaDB: on plain, mysecure and gocryptfs a private mariadbd
// (internal/sandbox: mariadb-install-db, then mariadbd --no-defaults, 64 MiB
// buffer pool, 48 MiB redo log, the server's durability defaults) with its
// datadir in D/mariadb, one user with a password for sysbench, `sysbench
// oltp_read_write prepare`, then -reps rounds of `sysbench oltp_read_write
// run` (threads, tables, rows and time from the flags), the targets
// rotating order from round to round while all three servers stay up.
//
// A value is the median over rounds; a ratio is the median of the
// per-round ratios (round k of one target against round k of the other),
// so one noisy round moves one sample. For every timed step it also
// records the server's CPU time (/proc/PID/stat of the mysecure daemon or
// gocryptfs), the machine's busy cores (/proc/stat) and the server's VmHWM
// (/proc/PID/status) afterwards; a mysecure remount starts a new daemon,
// so the peak RSS reported is the maximum over all daemon instances.
//
// With -profile DIR (needs perf) one more round runs on the FUSE targets,
// untimed for the medians, with `perf record -a -g -e cpu-clock` and
// `perf record -e fuse:fuse_request_send,fuse_request_end` around every
// step, and one short sysbench run per target likewise; it prints, per
// step, CPU by command, the server's top symbols and the FUSE requests by
// opcode (count, size, latency), and keeps the perf.data files and call
// graphs in DIR. A second short sysbench run per target runs under
// `perf trace -s` alone (system call counts and latencies of mariadbd and
// the server: where a commit waits); perf trace would distort a CPU
// profile taken at the same time.
//
// The numbers of one run are comparable with each other only: the machine
// (a shared VM) drifts, so every ratio pairs values of the same round. The
// "others" column (busy cores that neither the server nor the workload
// used) shows when something else ran.
//
// It never fails on a missed target: it prints "met" or "NOT met". It exits
// 1 when something could not be run, and cleans up (servers stopped, file
// systems unmounted, its directories removed) on every exit, Ctrl-C
// included. bench/compare.sh builds and runs it.
//
//	usage: compare -work DIR [-mysecure BIN] [-reps 3] [-size-mib 512]
//	               [-tree /usr/local/go/src] [-targets LIST] [-files=true] [-sysbench=true]
//	               [-sb-time 20] [-sb-tables 4] [-sb-rows 20000] [-sb-threads 4]
//	               [-profile DIR] [-profile-sb-time 10]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// allTargets are the known targets, in report order.
var allTargets = []string{"plain", "engine", "mysecure", "gocryptfs", "mysecure-admin", "mysecure-b", "gofuse-loopback", "bindfs"}

// refTargets are FUSE servers without encryption, for reference: what any
// FUSE server costs on this machine.
var refTargets = []string{"gofuse-loopback", "bindfs"}

type config struct {
	work     string
	mysecure string
	bBin     string   // mysecure-b: another binary (an A/B in one run)
	bEnv     []string // mysecure-b: extra environment of its commands and daemon
	loopback string   // gofuse-loopback: go-fuse's example/loopback binary
	reps     int
	sizeMiB  int
	tree     string
	targets  []string
	files    bool
	sysbench bool
	sbTime   int
	sbTables int
	sbRows   int
	sbThread int
	profile  string
	profSb   int
}

func main() {
	var c config
	var targets, bEnv string
	flag.StringVar(&c.work, "work", "", "existing directory for all targets (required; on the real disk, traversable by mysql)")
	flag.StringVar(&c.mysecure, "mysecure", "bin/mysecure", "the mysecure binary")
	flag.StringVar(&c.bBin, "mysecure-b", "", "binary of target mysecure-b (default: -mysecure), for an A/B in one run")
	flag.StringVar(&bEnv, "mysecure-b-env", "", "extra environment of target mysecure-b: K=V, comma separated")
	flag.StringVar(&c.loopback, "loopback", "", "binary of go-fuse's example/loopback, for target gofuse-loopback")
	flag.IntVar(&c.reps, "reps", 3, "rounds of every workload")
	flag.IntVar(&c.sizeMiB, "size-mib", 512, "size of the sequential file in MiB")
	flag.StringVar(&c.tree, "tree", "/usr/local/go/src", "tree of small files for cp -a, ls -lR, read, rm")
	flag.StringVar(&targets, "targets", "plain,mysecure,gocryptfs,mysecure-admin", "targets, comma separated")
	flag.BoolVar(&c.files, "files", true, "run the file workloads")
	flag.BoolVar(&c.sysbench, "sysbench", true, "run the MariaDB + sysbench part")
	flag.IntVar(&c.sbTime, "sb-time", 20, "seconds per sysbench run")
	flag.IntVar(&c.sbTables, "sb-tables", 4, "sysbench tables")
	flag.IntVar(&c.sbRows, "sb-rows", 20000, "sysbench rows per table")
	flag.IntVar(&c.sbThread, "sb-threads", 4, "sysbench threads")
	flag.StringVar(&c.profile, "profile", "", "profile one extra round with perf and keep the data in this directory")
	flag.IntVar(&c.profSb, "profile-sb-time", 10, "seconds of the profiled sysbench run")
	flag.Parse()
	c.targets = strings.Split(targets, ",")
	if bEnv != "" {
		c.bEnv = strings.Split(bEnv, ",")
	}
	if c.bBin == "" {
		c.bBin = c.mysecure
	}
	if flag.NArg() != 0 || c.work == "" || c.reps <= 0 || c.sizeMiB <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, t := range c.targets {
		if !slices.Contains(allTargets, t) {
			fmt.Fprintf(os.Stderr, "compare: error: unknown target %q\n", t)
			os.Exit(2)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	b := &bench{cfg: c}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "compare: %v: cleaning up\n", s)
		cancel()
		b.cleanup(true)
		os.Exit(130)
	}()
	err := b.run(ctx)
	b.cleanup(err != nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: error: %v\n", err)
		os.Exit(1)
	}
}

// bench is one run.
type bench struct {
	cfg     config
	targets []target
	prof    *profiler

	mu      sync.Mutex
	servers []*sandbox.Server
	samples []sample
	dirs    []string // made here, removed at the end

	cleanOnce sync.Once
}

func (b *bench) progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (b *bench) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (FUSE mounts with allow_other, drop_caches, mariadbd as mysql)")
	}
	for _, p := range []string{"dd", "cp", "cat", "rm", "ls", "find", "sync"} {
		if _, err := lookPath(p); err != nil {
			return err
		}
	}
	work, err := filepath.Abs(b.cfg.work)
	if err != nil {
		return err
	}
	b.cfg.work = work
	// mysqld (user mysql) must traverse every parent of its datadir.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	if b.cfg.profile != "" {
		p, err := newProfiler(ctx, b.cfg.profile, filepath.Join(work, "perf.pids"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: warning: no profiles: %v\n", err)
		} else {
			b.mu.Lock()
			b.prof = p
			b.mu.Unlock()
		}
	}
	for _, name := range b.cfg.targets {
		t, err := newTarget(name, b)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.targets = append(b.targets, t)
		b.mu.Unlock()
		b.progress("setting up %s", name)
		if err := t.setup(ctx); err != nil {
			return fmt.Errorf("failed to set up %s: %w", name, err)
		}
	}
	b.printHeader(ctx)

	// The file workloads, rounds of all targets in rotating order.
	for rep := 0; rep < b.cfg.reps && b.cfg.files; rep++ {
		for _, t := range rotate(b.targets, rep) {
			if t.name() == "engine" {
				continue // the file workloads on engine's disk are plain's
			}
			if err := b.fileRound(ctx, t, rep); err != nil {
				return err
			}
		}
	}
	if b.prof != nil && b.cfg.files {
		for _, t := range b.targets {
			if t.name() == "mysecure" || t.name() == "gocryptfs" {
				if err := b.fileRound(ctx, t, profRep); err != nil {
					return err
				}
			}
		}
	}
	if b.cfg.sysbench {
		if err := b.sysbench(ctx); err != nil {
			return err
		}
	}
	// Unmount now, so that the last instances' peak RSS is recorded.
	for _, t := range b.targets {
		if err := t.close(ctx); err != nil {
			return fmt.Errorf("failed to unmount %s: %w", t.name(), err)
		}
	}
	b.report()
	return nil
}

// rotate returns ts starting at element k mod len.
func rotate[T any](ts []T, k int) []T {
	k %= len(ts)
	return append(append([]T(nil), ts[k:]...), ts[:k]...)
}

// cleanup stops servers, unmounts and removes what run made. killed: be
// quick (SIGKILL the servers) rather than clean.
func (b *bench) cleanup(killed bool) {
	b.cleanOnce.Do(func() {
		b.mu.Lock()
		servers := append([]*sandbox.Server(nil), b.servers...)
		targets := append([]target(nil), b.targets...)
		dirs := append([]string(nil), b.dirs...)
		prof := b.prof
		b.mu.Unlock()
		if prof != nil {
			prof.stopActive()
		}
		for _, s := range servers {
			if s.Exited() {
				continue
			}
			if killed {
				s.Kill()
			} else if err := s.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "compare: warning: %v\n", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, t := range targets {
			if err := t.close(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "compare: warning: unmounting %s: %v\n", t.name(), err)
			}
		}
		if m := mountsUnder(b.cfg.work); len(m) > 0 {
			fmt.Fprintf(os.Stderr, "compare: warning: still mounted, not removing %s: %s\n", b.cfg.work, strings.Join(m, " "))
			return
		}
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				fmt.Fprintf(os.Stderr, "compare: warning: %v\n", err)
			}
		}
	})
}

// mkdir makes a directory below the work dir that cleanup removes.
func (b *bench) mkdir(name string) (string, error) {
	d := filepath.Join(b.cfg.work, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	b.mu.Lock()
	b.dirs = append(b.dirs, d)
	b.mu.Unlock()
	return d, nil
}
