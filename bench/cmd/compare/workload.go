package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// profRep is the round number of the profiled round (not in medians).
const profRep = -1

// sample is one timed step.
type sample struct {
	target string
	step   string
	rep    int
	wall   time.Duration
	value  float64       // in the step's unit
	srvCPU time.Duration // CPU time of the FUSE server during the step
	wlCPU  time.Duration // CPU time of the workload: its programs (and mariadbd)
	busy   float64       // busy cores of the machine during the step
	lat95  float64       // sysbench: 95th percentile latency, ms
	ctxsw  float64       // context switches per second on the machine
	srvCS  float64       // context switches per second of the FUSE server's threads
}

// stepDef describes a step: its unit and whether more is better.
type stepDef struct {
	name, title, unit string
	higherBetter      bool
}

var steps = []stepDef{
	{"seqwrite", "sequential write + fsync", "MiB/s", true},
	{"seqread", "sequential read after remount (FUSE: unmount + mount; plain: drop_caches)", "MiB/s", true},
	{"seqread-cold", "sequential read after remount and drop_caches (all cold)", "MiB/s", true},
	{"cp", "cp -a of the tree", "s", false},
	{"lsR", "ls -lR of the copy after remount and drop_caches (all cold)", "s", false},
	{"readall", "read every file of the copy (cat)", "s", false},
	{"rm", "rm -rf of the copy", "s", false},
	{"sb-prepare", "sysbench prepare", "s", false},
	{"sb-tps", "sysbench oltp_read_write", "tps", true},
	{"sb-traced", "sysbench oltp_read_write under perf trace (profiled round only)", "tps", true},
}

func stepByName(name string) stepDef {
	for _, s := range steps {
		if s.name == name {
			return s
		}
	}
	return stepDef{name: name, unit: "s"}
}

// result is what a step's workload reports. value is in the step's unit
// (sysbench) or 0: derived from the wall time.
type result struct {
	value, lat95 float64
	cpu          time.Duration // CPU of the workload's programs (and mariadbd)
}

// others is the CPU load during s that neither the server nor the workload
// explains, in cores: other jobs on a shared machine, kernel threads
// (writeback, kworkers).
func (s sample) others() float64 {
	return s.busy - (s.srvCPU+s.wlCPU).Seconds()/s.wall.Seconds()
}

// step times fn as step name of target t and records a sample.
func (b *bench) step(ctx context.Context, t target, name string, rep int, fn func() (result, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unix.Sync()
	pid := t.serverPid()
	var rec *recording
	if rep == profRep && b.prof != nil {
		var err error
		if rec, err = b.prof.start(ctx, t, name); err != nil {
			return err
		}
	}
	cpu0, ct0 := procCPU(pid), readCPUTimes()
	scs0 := procCtxSwitches(pid)
	start := time.Now()
	res, err := fn()
	v := res.value
	wall := time.Since(start)
	cpu1, ct1 := procCPU(pid), readCPUTimes()
	scs1 := procCtxSwitches(pid)
	if rec != nil {
		if perr := rec.stop(); perr != nil && err == nil {
			err = perr
		}
		b.prof.mu.Lock()
		b.prof.active = nil
		b.prof.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", name, t.name(), err)
	}
	t.rss().sample(pid, name)
	def := stepByName(name)
	if v == 0 {
		switch def.unit {
		case "MiB/s":
			v = float64(b.cfg.sizeMiB) / wall.Seconds()
		default:
			v = wall.Seconds()
		}
	}
	s := sample{target: t.name(), step: name, rep: rep, wall: wall, value: v, srvCPU: cpu1 - cpu0, wlCPU: res.cpu, lat95: res.lat95}
	if d := ct1.total - ct0.total; d > 0 {
		// Jiffies over all CPUs: busy/total*ncpu is busy cores.
		s.busy = float64(ct1.busy-ct0.busy) / float64(d) * float64(numCPU())
	}
	s.ctxsw = float64(ct1.ctxt-ct0.ctxt) / wall.Seconds()
	s.srvCS = float64(scs1-scs0) / wall.Seconds()
	b.mu.Lock()
	b.samples = append(b.samples, s)
	b.mu.Unlock()
	r := strconv.Itoa(rep + 1)
	if rep == profRep {
		r = "prof"
	}
	b.progress("round %s  %-15s %-13s %10.2f %-5s wall %6.2f s  server cpu %6.2f s  workload cpu %6.2f s  busy %.2f cores (others %.2f)  ctxsw/s %.0f (server %.0f)",
		r, t.name(), name, v, def.unit, wall.Seconds(), s.srvCPU.Seconds(), s.wlCPU.Seconds(), s.busy, s.others(), s.ctxsw, s.srvCS)
	if rec != nil {
		b.prof.report(ctx, rec, s)
	}
	return nil
}

// fileRound runs the file workloads once on t.
func (b *bench) fileRound(ctx context.Context, t target, rep int) error {
	d := t.data()
	seq := filepath.Join(d, "seq.bin")
	tree := filepath.Join(d, "tree")
	noValue := func(cpu time.Duration, err error) (result, error) { return result{cpu: cpu}, err }

	if err := b.step(ctx, t, "seqwrite", rep, func() (result, error) {
		return noValue(run(ctx, nil, "dd", "if=/dev/zero", "of="+seq, "bs=1M", "count="+strconv.Itoa(b.cfg.sizeMiB), "conv=fsync", "status=none"))
	}); err != nil {
		return err
	}
	if err := t.remount(ctx, false); err != nil {
		return err
	}
	read := func() (result, error) {
		return noValue(run(ctx, nil, "dd", "if="+seq, "of=/dev/null", "bs=1M", "status=none"))
	}
	if err := b.step(ctx, t, "seqread", rep, read); err != nil {
		return err
	}
	if err := t.remount(ctx, true); err != nil {
		return err
	}
	if err := b.step(ctx, t, "seqread-cold", rep, read); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "rm", "-f", seq); err != nil {
		return err
	}

	if err := warmTree(b.cfg.tree); err != nil {
		return err
	}
	if err := b.step(ctx, t, "cp", rep, func() (result, error) {
		return noValue(run(ctx, nil, "cp", "-a", b.cfg.tree, tree))
	}); err != nil {
		return err
	}
	if err := t.remount(ctx, true); err != nil {
		return err
	}
	if err := b.step(ctx, t, "lsR", rep, func() (result, error) {
		return noValue(run(ctx, io.Discard, "ls", "-lR", tree))
	}); err != nil {
		return err
	}
	if err := b.step(ctx, t, "readall", rep, func() (result, error) {
		// Output through a pipe: no cat shortcut for /dev/null.
		return noValue(run(ctx, io.Discard, "find", tree, "-type", "f", "-exec", "cat", "{}", "+"))
	}); err != nil {
		return err
	}
	return b.step(ctx, t, "rm", rep, func() (result, error) {
		return noValue(run(ctx, nil, "rm", "-rf", tree))
	})
}

// warmTree reads every file of the source tree so that cp -a reads it
// from the page cache on every target alike.
func warmTree(root string) error {
	buf := make([]byte, 1<<20)
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(io.Discard, f, buf)
		return err
	})
}

// run runs a program; stdout goes to out (nil: /dev/null). It returns the
// CPU time of the program and the children it waited for.
func run(ctx context.Context, out io.Writer, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tailLines(stderr.String(), 5))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
