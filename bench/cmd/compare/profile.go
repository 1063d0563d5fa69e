package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// profiler records perf profiles around the steps of the profiled round.
type profiler struct {
	dir      string
	pidFile  string   // pids of perf sessions, for compare.sh to stop if this program is killed
	fuse     bool     // the fuse tracepoints are available
	sections []string // Markdown, one per profiled step

	mu     sync.Mutex
	active *recording // being recorded: cleanup stops it
}

func newProfiler(ctx context.Context, dir, pidFile string) (*profiler, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, errors.New("perf not found")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	probe := filepath.Join(dir, "probe.data")
	defer os.Remove(probe)
	// Hardware counters are often missing in VMs; the cpu-clock software
	// event works wherever perf does.
	if out, err := exec.CommandContext(ctx, "perf", "record", "-q", "-e", "cpu-clock", "-o", probe, "--", "true").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("perf record does not work here: %v: %s", err, out)
	}
	p := &profiler{dir: dir, pidFile: pidFile}
	if err := exec.CommandContext(ctx, "perf", "record", "-q", "-e", "fuse:fuse_request_send", "-o", probe, "--", "true").Run(); err == nil {
		p.fuse = true
	}
	return p, nil
}

// recording is a running set of perf sessions around one step.
type recording struct {
	t          target
	step       string
	base       string
	pid        int
	conn       uint32
	cmds       []*exec.Cmd
	dones      []chan error
	outs       []*syncBuffer
	cpu, fuseF string
	trace      string
}

// tracedSyscalls are the system calls `perf trace -s` summarizes: file
// I/O, sync and metadata calls of the server and the workload.
const tracedSyscalls = "fsync,fdatasync,sync_file_range,pwrite64,pwritev,pwritev2,pread64,preadv,preadv2," +
	"io_submit,io_getevents,io_uring_enter,openat,newfstatat,statx,close,mkdirat,mkdir,unlinkat,unlink," +
	"getxattr,lgetxattr,fgetxattr,setxattr,lsetxattr,fsetxattr,fchmod,fchmodat,fchownat,lchown,fchown," +
	"utimensat,readlinkat,getdents64,renameat2,rename,symlinkat,fallocate,ftruncate"

// stepComms are the commands whose system calls a step's summary shows,
// besides the server's.
var stepComms = map[string][]string{
	"seqwrite": {"dd"}, "seqread": {"dd"}, "seqread-cold": {"dd"},
	"cp": {"cp"}, "lsR": {"ls"}, "readall": {"cat", "find"}, "rm": {"rm"},
	"sb-prepare": {"mariadbd"}, "sb-tps": {"mariadbd"}, "sb-traced": {"mariadbd"},
}

func (p *profiler) start(ctx context.Context, t target, step string) (*recording, error) {
	base := filepath.Join(p.dir, t.name()+"-"+step)
	r := &recording{t: t, step: step, base: base, pid: t.serverPid(), conn: t.conn(),
		cpu: base + ".cpu.data", fuseF: base + ".fuse.data", trace: base + ".syscalls.txt"}
	// perf trace puts a filtered tracepoint on every system call of the
	// machine, which inflates the cost of every call in a CPU profile taken
	// at the same time: it runs alone, in a run of its own (sb-traced).
	var sessions [][]string
	if step == "sb-traced" {
		sessions = append(sessions, []string{"trace", "-s", "-a", "-e", tracedSyscalls, "-o", r.trace})
	} else {
		sessions = append(sessions, []string{"record", "-q", "-a", "-g", "-F", "499", "-e", "cpu-clock", "-o", r.cpu})
	}
	if p.fuse && r.conn != 0 {
		sessions = append(sessions, []string{"record", "-q", "-a", "-m", "4096", "-e", "fuse:fuse_request_send", "-e", "fuse:fuse_request_end", "-o", r.fuseF})
	}
	for _, args := range sessions {
		c := exec.Command("perf", args...)
		out := &syncBuffer{}
		c.Stdout, c.Stderr = out, out
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			r.stop()
			return nil, err
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		r.cmds, r.dones, r.outs = append(r.cmds, c), append(r.dones, done), append(r.outs, out)
		appendPid(p.pidFile, c.Process.Pid)
	}
	p.mu.Lock()
	p.active = r
	p.mu.Unlock()
	// perf needs a moment to open its events on every CPU.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		r.stop()
		return nil, ctx.Err()
	}
	for i, d := range r.dones {
		select {
		case err := <-d:
			d <- err
			r.stop()
			return nil, fmt.Errorf("perf %s exited early (%v): %s", strings.Join(r.cmds[i].Args[1:], " "), err, r.outs[i].String())
		default:
		}
	}
	return r, nil
}

// stopActive stops the recording in progress, if any.
func (p *profiler) stopActive() {
	p.mu.Lock()
	r := p.active
	p.mu.Unlock()
	if r != nil {
		_ = r.stop()
	}
}

func appendPid(path string, pid int) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintln(f, pid)
	f.Close()
}

// stop ends the perf sessions (SIGINT makes perf write its data). It may
// be called more than once.
func (r *recording) stop() error {
	var errs []error
	for i, c := range r.cmds {
		select {
		case err := <-r.dones[i]:
			r.dones[i] <- err
			continue // already stopped
		default:
		}
		_ = c.Process.Signal(syscall.SIGINT)
		select {
		case err := <-r.dones[i]:
			r.dones[i] <- err
			if err != nil && !strings.Contains(err.Error(), "interrupt") {
				errs = append(errs, fmt.Errorf("perf: %v: %s", err, r.outs[i].String()))
			}
		case <-time.After(2 * time.Minute):
			_ = c.Process.Kill()
			errs = append(errs, errors.New("perf did not stop within 2 minutes"))
		}
	}
	return errors.Join(errs...)
}

// perfReport runs perf report on a recording and returns its output.
func perfReport(ctx context.Context, data string, args ...string) (string, error) {
	all := append([]string{"report", "-i", data, "--stdio", "-q"}, args...)
	out, err := exec.CommandContext(ctx, "perf", all...).Output()
	if err != nil {
		return "", fmt.Errorf("perf %s: %v", strings.Join(all, " "), err)
	}
	return string(out), nil
}

// report summarizes one recording as Markdown for the run's output; the
// raw data and a call graph stay in the profile directory.
func (p *profiler) report(ctx context.Context, r *recording, s sample) {
	var w strings.Builder
	fmt.Fprintf(&w, "#### %s: %s\n\n", s.target, stepByName(s.step).title)
	data := filepath.Base(r.cpu)
	if !fileExists(r.cpu) {
		data = filepath.Base(r.trace)
	}
	fmt.Fprintf(&w, "wall %.2f s, server CPU %.2f s, workload CPU %.2f s, machine busy %.2f cores (others %.2f); data: `%s`\n\n",
		s.wall.Seconds(), s.srvCPU.Seconds(), s.wlCPU.Seconds(), s.busy, s.others(), data)
	// Where the machine's CPU went, by command (swapper = idle).
	if !fileExists(r.cpu) {
		// A traced run: no CPU profile.
	} else if out, err := perfReport(ctx, r.cpu, "--no-children", "--sort", "comm", "-g", "none", "--percent-limit", "2"); err == nil {
		fmt.Fprintf(&w, "CPU samples by command (all CPUs; `swapper` is idle):\n\n```\n%s```\n\n", headLines(out, 10))
	} else {
		fmt.Fprintf(&w, "(perf report failed: %v)\n\n", err)
	}
	if r.pid != 0 && fileExists(r.cpu) {
		pid := strconv.Itoa(r.pid)
		if out, err := perfReport(ctx, r.cpu, "--no-children", "--pid", pid, "--sort", "sym", "-g", "none", "--percentage", "relative"); err == nil {
			kernel, user := splitKernelUser(out)
			fmt.Fprintf(&w, "Server (pid %s) self time: kernel %.0f%%, user %.0f%%. Top symbols (share of the server's samples):\n\n```\n%s```\n\n",
				pid, kernel, user, headLines(out, 22))
		}
		if out, err := perfReport(ctx, r.cpu, "--children", "--pid", pid, "--sort", "sym", "-g", "none", "--percentage", "relative", "--percent-limit", "8"); err == nil {
			fmt.Fprintf(&w, "Server top symbols with children (Go frames can count more than once):\n\n```\n%s```\n\n", headLines(dropWrappers(out), 25))
		}
		// The full call graph, for reading later.
		if out, err := perfReport(ctx, r.cpu, "--children", "--pid", pid, "-g", "graph,0.5,caller,function,percent", "--percent-limit", "3"); err == nil {
			_ = os.WriteFile(r.base+".callgraph.txt", []byte(out), 0o644)
		}
	}
	if fileExists(r.trace) {
		if tbl, err := syscallSummary(r.trace, append([]string{serverComm(s.target)}, stepComms[s.step]...)); err == nil {
			fmt.Fprintf(&w, "System calls (`perf trace -s -a`, summed over threads; traced calls only):\n\n%s\n", tbl)
		} else {
			fmt.Fprintf(&w, "(perf trace: %v)\n\n", err)
		}
	}
	if fileExists(r.fuseF) {
		if tbl, err := fuseOps(ctx, r.fuseF, r.conn); err == nil {
			fmt.Fprintf(&w, "FUSE requests on this mount (kernel tracepoints; latency = send to reply, queueing included):\n\n%s\n", tbl)
		} else {
			fmt.Fprintf(&w, "(FUSE trace: %v)\n\n", err)
		}
	}
	p.sections = append(p.sections, w.String())
}

func headLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.TrimRight(l, " "))
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, "\n") + "\n"
}

var fuseLine = regexp.MustCompile(`^\s*([0-9.]+):\s+fuse:fuse_request_(send|end):\s+connection (\d+) req (\d+) (?:opcode \d+ \((\w+)\) len (\d+)|len (\d+) error (-?\d+))`)

type opStats struct {
	name           string
	count, errs    int
	reqLen, repLen int64
	replies        int
	lat            []float64 // seconds
}

// fuseOps aggregates the FUSE requests of connection conn in a trace.
func fuseOps(ctx context.Context, data string, conn uint32) (string, error) {
	cmd := exec.CommandContext(ctx, "perf", "script", "-i", data, "-F", "time,event,trace")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	type pending struct {
		op string
		t  float64
	}
	inflight := map[uint64]pending{}
	ops := map[string]*opStats{}
	want := strconv.FormatUint(uint64(conn), 10)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := fuseLine.FindStringSubmatch(sc.Text())
		if m == nil || m[3] != want {
			continue
		}
		t, _ := strconv.ParseFloat(m[1], 64)
		req, _ := strconv.ParseUint(m[4], 10, 64)
		if m[2] == "send" {
			op := strings.TrimPrefix(m[5], "FUSE_")
			st := ops[op]
			if st == nil {
				st = &opStats{name: op}
				ops[op] = st
			}
			st.count++
			n, _ := strconv.ParseInt(m[6], 10, 64)
			st.reqLen += n
			inflight[req] = pending{op, t}
			continue
		}
		pd, ok := inflight[req]
		if !ok {
			continue
		}
		delete(inflight, req)
		st := ops[pd.op]
		st.replies++
		n, _ := strconv.ParseInt(m[7], 10, 64)
		st.repLen += n
		if m[8] != "0" {
			st.errs++
		}
		st.lat = append(st.lat, t-pd.t)
	}
	werr := cmd.Wait()
	if werr != nil {
		return "", fmt.Errorf("perf script: %v: %s", werr, stderr.String())
	}
	var list []*opStats
	for _, st := range ops {
		list = append(list, st)
	}
	slices.SortFunc(list, func(a, b *opStats) int { return sumF(b.lat) - sumF(a.lat) })
	var w strings.Builder
	w.WriteString("| op | count | mean request B | mean reply B | mean µs | p50 µs | p99 µs | total s | errors |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, st := range list {
		slices.Sort(st.lat)
		var total float64
		for _, l := range st.lat {
			total += l
		}
		mean, p50, p99 := 0.0, 0.0, 0.0
		if n := len(st.lat); n > 0 {
			mean = total / float64(n) * 1e6
			p50 = st.lat[n/2] * 1e6
			p99 = st.lat[min(n-1, n*99/100)] * 1e6
		}
		repMean := int64(0)
		if st.replies > 0 {
			repMean = st.repLen / int64(st.replies)
		}
		fmt.Fprintf(&w, "| %s | %d | %d | %d | %.0f | %.0f | %.0f | %.2f | %d |\n",
			st.name, st.count, st.reqLen/int64(st.count), repMean, mean, p50, p99, total, st.errs)
	}
	if strings.Contains(stderr.String(), "lost") {
		fmt.Fprintf(&w, "\n(perf lost events: %s)\n", strings.TrimSpace(stderr.String()))
	}
	return w.String(), nil
}

// sumF compares latency totals in microseconds (for sorting).
func sumF(l []float64) int {
	var s float64
	for _, x := range l {
		s += x
	}
	return int(s * 1e6)
}

// numCPU counts the CPUs /proc/stat reports.
func numCPU() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// serverComm is the command name of a target's FUSE server.
func serverComm(target string) string {
	if strings.HasPrefix(target, "mysecure") {
		return "mysecure"
	}
	return target
}

// splitKernelUser sums the [k] and [.] lines of a perf report by symbol.
func splitKernelUser(report string) (kernel, user float64) {
	for _, l := range strings.Split(report, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		switch f[1] {
		case "[k]":
			kernel += v
		case "[.]":
			user += v
		}
	}
	return kernel, user
}

// dropWrappers removes the frames every goroutine has from a report.
func dropWrappers(report string) string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, "runtime.goexit") || strings.Contains(l, ".gowrap") || strings.Contains(l, "(*Server).loop") ||
			strings.Contains(l, "runtime.mstart") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

var (
	traceHeader = regexp.MustCompile(`^\s*(.+) \((\d+)\), \d+ events`)
	traceRow    = regexp.MustCompile(`^\s+(\w+)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)`)
)

type callStats struct {
	calls, errs int64
	totalMs     float64
	maxMs       float64
}

// syscallSummary sums a `perf trace -s` summary over the threads of each
// command in comms and returns a Markdown table.
func syscallSummary(path string, comms []string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	per := map[string]map[string]*callStats{}
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if m := traceHeader.FindStringSubmatch(l); m != nil {
			cur = strings.TrimSpace(m[1])
			continue
		}
		m := traceRow.FindStringSubmatch(l)
		if m == nil || !slices.Contains(comms, cur) {
			continue
		}
		if per[cur] == nil {
			per[cur] = map[string]*callStats{}
		}
		st := per[cur][m[1]]
		if st == nil {
			st = &callStats{}
			per[cur][m[1]] = st
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		e, _ := strconv.ParseInt(m[3], 10, 64)
		tot, _ := strconv.ParseFloat(m[4], 64)
		mx, _ := strconv.ParseFloat(m[7], 64)
		st.calls += n
		st.errs += e
		st.totalMs += tot
		st.maxMs = max(st.maxMs, mx)
	}
	var w strings.Builder
	w.WriteString("| command | syscall | calls | errors | total ms | mean µs | max ms |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, c := range comms {
		type row struct {
			name string
			st   *callStats
		}
		var rows []row
		for name, st := range per[c] {
			rows = append(rows, row{name, st})
		}
		slices.SortFunc(rows, func(a, b row) int {
			switch {
			case a.st.totalMs > b.st.totalMs:
				return -1
			case a.st.totalMs < b.st.totalMs:
				return 1
			}
			return strings.Compare(a.name, b.name)
		})
		for i, r := range rows {
			if i == 8 {
				break
			}
			fmt.Fprintf(&w, "| %s | %s | %d | %d | %.1f | %.1f | %.2f |\n", c, r.name, r.st.calls, r.st.errs,
				r.st.totalMs, r.st.totalMs/float64(r.st.calls)*1000, r.st.maxMs)
		}
	}
	return w.String(), nil
}
