package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// goal is a target from the issue: ratio of target a over target b on a
// step, at least (higherBetter) or at most the bound.
type goal struct {
	step, a, b string
	bound      float64
	atLeast    bool
}

var goals = []goal{
	{"seqwrite", "mysecure", "gocryptfs", 1.5, true},
	{"seqread", "mysecure", "gocryptfs", 1.5, true},
	{"cp", "mysecure", "gocryptfs", 0.5, false},
	{"sb-tps", "mysecure", "plain", 0.85, true},
}

// engineGoal: engine mode's sysbench throughput against plain (issue 21).
const engineGoal = 0.93

// rssLimitMiB is the bound on the daemon's peak RSS.
const rssLimitMiB = 200

func (b *bench) printHeader(ctx context.Context) {
	c := b.cfg
	fmt.Printf("## Setup\n\n")
	fmt.Printf("- targets: %s (rounds rotate the order)\n", strings.Join(c.targets, ", "))
	if c.files {
		fmt.Printf("- rounds: %d; sequential file %d MiB; tree %s (%d files)\n", c.reps, c.sizeMiB, c.tree, countFiles(c.tree))
	} else {
		fmt.Printf("- rounds: %d; no file workloads\n", c.reps)
	}
	if c.sysbench {
		fmt.Printf("- sysbench oltp_read_write: %d threads, %d tables x %d rows, %d s per run\n", c.sbThread, c.sbTables, c.sbRows, c.sbTime)
	}
	var fs unix.Statfs_t
	fsType := "?"
	if unix.Statfs(c.work, &fs) == nil {
		fsType = fmt.Sprintf("0x%x", fs.Type)
		switch fs.Type {
		case unix.EXT4_SUPER_MAGIC:
			fsType = "ext4"
		case unix.XFS_SUPER_MAGIC:
			fsType = "xfs"
		case unix.TMPFS_MAGIC:
			fsType = "tmpfs (!)"
		case unix.BTRFS_SUPER_MAGIC:
			fsType = "btrfs"
		}
	}
	fmt.Printf("- work dir: %s (%s)\n", c.work, fsType)
	fmt.Printf("- mysecure: %s, mode enforcing with ALLOW @mysql * rules for %s; mysecure-admin: admin mode, no rules\n", firstLine(ctx, c.mysecure, "version"), strings.Join(rulePrograms, ", "))
	if b.hasTarget("mysecure-b") {
		fmt.Printf("- mysecure-b: %s (%s), environment %q, otherwise as mysecure\n", c.bBin, firstLine(ctx, c.bBin, "version"), c.bEnv)
	}
	if b.hasTarget("gocryptfs") {
		fmt.Printf("- gocryptfs: %s (defaults, -allow_other)\n", firstLine(ctx, "gocryptfs", "-version"))
	}
	if b.hasTarget("gofuse-loopback") {
		fmt.Printf("- gofuse-loopback: go-fuse's example/loopback, %s (no encryption; defaults, -allow-other)\n", c.loopback)
	}
	if b.hasTarget("bindfs") {
		fmt.Printf("- bindfs: %s (C, libfuse; no encryption; --multithreaded -o allow_other)\n", firstLine(ctx, "bindfs", "--version"))
	}
	if c.sysbench {
		fmt.Printf("- %s; %s\n", firstLine(ctx, "mariadbd", "--version"), firstLine(ctx, "sysbench", "--version"))
	}
	if b.prof != nil {
		fmt.Printf("- profiles: %s (%s; fuse tracepoints: %v)\n", c.profile, firstLine(ctx, "perf", "--version"), b.prof.fuse)
	}
	fmt.Println()
}

func firstLine(ctx context.Context, prog string, args ...string) string {
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return prog + " (unknown version)"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

func countFiles(root string) int {
	out, err := exec.Command("find", root, "-type", "f").Output()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "\n")
}

// values returns the timed samples of target t on step, by round.
func (b *bench) values(t, step string) map[int]sample {
	m := map[int]sample{}
	for _, s := range b.samples {
		if s.target == t && s.step == step && s.rep >= 0 {
			m[s.rep] = s
		}
	}
	return m
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (b *bench) medianOf(t, step string, f func(sample) float64) (float64, int) {
	var xs []float64
	for _, s := range b.values(t, step) {
		xs = append(xs, f(s))
	}
	return median(xs), len(xs)
}

// ratio is the median over rounds of value(a)/value(b) in the same round.
func (b *bench) ratio(step, a, bb string) (float64, bool) {
	va, vb := b.values(a, step), b.values(bb, step)
	var rs []float64
	for rep, sa := range va {
		if sb, ok := vb[rep]; ok && sb.value > 0 {
			rs = append(rs, sa.value/sb.value)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

func (b *bench) hasTarget(name string) bool { return slices.Contains(b.cfg.targets, name) }

func (b *bench) report() {
	cols := []string{}
	for _, t := range allTargets {
		if b.hasTarget(t) {
			cols = append(cols, t)
		}
	}
	value := func(s sample) float64 { return s.value }
	fmt.Printf("## Results (medians of %d rounds)\n\n", b.cfg.reps)
	ab := b.hasTarget("mysecure-b")
	abHead, abSep := "", ""
	if ab {
		abHead, abSep = " mysecure-b ÷ mysecure |", "--:|"
	}
	fmt.Printf("| workload | unit | %s | mysecure ÷ gocryptfs | mysecure ÷ plain |%s target | result |\n", strings.Join(cols, " | "), abHead)
	fmt.Printf("|---|---|%s--:|--:|%s---|---|\n", strings.Repeat("--:|", len(cols)), abSep)
	for _, st := range steps {
		var cells []string
		seen := false
		for _, t := range cols {
			v, n := b.medianOf(t, st.name, value)
			if n == 0 {
				cells = append(cells, "")
				continue
			}
			seen = true
			cells = append(cells, fmtValue(v, st.unit))
		}
		if !seen {
			continue
		}
		rg, okG := b.ratio(st.name, "mysecure", "gocryptfs")
		rp, okP := b.ratio(st.name, "mysecure", "plain")
		tgt, res := "", ""
		for _, g := range goals {
			if g.step != st.name {
				continue
			}
			r, ok := rg, okG
			if g.b == "plain" {
				r, ok = rp, okP
			}
			if g.atLeast {
				tgt = fmt.Sprintf("≥ %.2f × %s", g.bound, g.b)
			} else {
				tgt = fmt.Sprintf("≤ %.2f × %s", g.bound, g.b)
			}
			switch {
			case !ok:
				res = "not measured"
			case (g.atLeast && r >= g.bound) || (!g.atLeast && r <= g.bound):
				res = "met"
			default:
				res = "NOT met"
			}
		}
		abCell := ""
		if ab {
			r, ok := b.ratio(st.name, "mysecure-b", "mysecure")
			abCell = " " + fmtRatio(r, ok) + " |"
		}
		fmt.Printf("| %s | %s | %s | %s | %s |%s %s | %s |\n", st.title, st.unit, strings.Join(cells, " | "),
			fmtRatio(rg, okG), fmtRatio(rp, okP), abCell, tgt, res)
	}
	fmt.Println()
	if r, ok := b.ratio("sb-tps", "engine", "plain"); ok {
		res := "met"
		if r < engineGoal {
			res = "NOT met"
		}
		fmt.Printf("Engine mode (MariaDB's own encryption, keys from mysecure) ÷ plain, sysbench tps: %s (target ≥ %.2f × plain: %s)\n\n", fmtRatio(r, true), engineGoal, res)
		if rm, ok := b.ratio("sb-tps", "mysecure", "engine"); ok {
			fmt.Printf("Mount mode ÷ engine mode, sysbench tps: %s\n\n", fmtRatio(rm, true))
		}
	}
	fmt.Println("Ratios are medians of per-round ratios of the values (throughput for MiB/s and tps, time for s).")
	fmt.Println()
	b.reportReferences()

	// Latency of sysbench.
	if b.cfg.sysbench {
		fmt.Printf("sysbench 95th percentile latency, ms (median): ")
		var parts []string
		for _, t := range cols {
			if v, n := b.medianOf(t, "sb-tps", func(s sample) float64 { return s.lat95 }); n > 0 {
				parts = append(parts, fmt.Sprintf("%s %.2f", t, v))
			}
		}
		fmt.Printf("%s\n\n", strings.Join(parts, ", "))
	}

	// CPU: server, workload, and the rest of the machine.
	fmt.Printf("## CPU during each step (medians)\n\n")
	fmt.Printf("Server: user+system CPU of the FUSE server process (mysecure daemon, gocryptfs). Workload: CPU of the step's programs "+
		"(dd, cp, ls, find+cat, rm; sysbench and mariadbd). Busy: the whole machine (%d CPUs, /proc/stat). "+
		"Others: busy minus server and workload, in cores: kernel threads (writeback, kworkers) and other jobs on the machine.\n\n", numCPU())
	fmt.Printf("| workload | target | wall s | server CPU s | workload CPU s | busy cores | others cores |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, st := range steps {
		for _, t := range cols {
			wall, n := b.medianOf(t, st.name, func(s sample) float64 { return s.wall.Seconds() })
			if n == 0 {
				continue
			}
			srv, _ := b.medianOf(t, st.name, func(s sample) float64 { return s.srvCPU.Seconds() })
			wl, _ := b.medianOf(t, st.name, func(s sample) float64 { return s.wlCPU.Seconds() })
			busy, _ := b.medianOf(t, st.name, func(s sample) float64 { return s.busy })
			oth, _ := b.medianOf(t, st.name, func(s sample) float64 { return s.others() })
			srvS := fmt.Sprintf("%.2f", srv)
			if t == "plain" {
				srvS = "–"
			}
			fmt.Printf("| %s | %s | %.2f | %s | %.2f | %.2f | %.2f |\n", st.title, t, wall, srvS, wl, busy, oth)
		}
	}
	fmt.Println()

	// Peak RSS.
	fmt.Printf("## Peak RSS of the FUSE servers (VmHWM)\n\n")
	fmt.Printf("| server | peak MiB | seen after step | instances (a remount starts a new one) | bound |\n|---|--:|---|--:|---|\n")
	for _, t := range b.targets {
		if t.name() == "plain" || t.name() == "engine" {
			continue
		}
		kib, step, n := t.rss().peak()
		bound := ""
		if strings.HasPrefix(t.name(), "mysecure") {
			if float64(kib)/1024 < rssLimitMiB {
				bound = fmt.Sprintf("< %d MiB: met", rssLimitMiB)
			} else {
				bound = fmt.Sprintf("< %d MiB: NOT met", rssLimitMiB)
			}
		}
		fmt.Printf("| %s | %.1f | %s | %d | %s |\n", t.name(), float64(kib)/1024, step, n, bound)
	}
	fmt.Println()

	// Every sample.
	fmt.Printf("## Every timed step\n\n| round | target | workload | value | unit | wall s | server CPU s | workload CPU s | busy cores | others cores | context switches/s | server's/s |\n|--:|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range b.samples {
		r := fmt.Sprint(s.rep + 1)
		if s.rep == profRep {
			r = "prof"
		}
		st := stepByName(s.step)
		fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f |\n", r, s.target, s.step, fmtValue(s.value, st.unit), st.unit,
			s.wall.Seconds(), s.srvCPU.Seconds(), s.wlCPU.Seconds(), s.busy, s.others(), s.ctxsw, s.srvCS)
	}
	fmt.Println()
	if b.prof != nil && len(b.prof.sections) > 0 {
		fmt.Printf("## Profiles (one extra round under perf; not in the medians)\n\n")
		for _, s := range b.prof.sections {
			fmt.Print(s)
		}
	}
	os.Stdout.Sync()
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func fmtRatio(r float64, ok bool) string {
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.2f", r)
}

// reportReferences prints, when a reference server ran (a FUSE server
// without encryption: refTargets), each one's ratio to plain beside
// mysecure's, and the server CPU per sysbench transaction: what any FUSE
// server costs on this machine, against what mysecure costs.
func (b *bench) reportReferences() {
	var refs []string
	for _, t := range refTargets {
		if b.hasTarget(t) {
			refs = append(refs, t)
		}
	}
	if len(refs) == 0 || !b.hasTarget("plain") {
		return
	}
	fmt.Printf("## Reference FUSE servers without encryption\n\n")
	fmt.Printf("Medians of per-round ratios to plain, and of mysecure to each reference.\n\n")
	head := "| workload | unit | mysecure ÷ plain |"
	sep := "|---|---|--:|"
	for _, r := range refs {
		head += fmt.Sprintf(" %s ÷ plain |", r)
		sep += "--:|"
	}
	for _, r := range refs {
		head += fmt.Sprintf(" mysecure ÷ %s |", r)
		sep += "--:|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for _, st := range steps {
		rp, okP := b.ratio(st.name, "mysecure", "plain")
		cells := []string{fmtRatio(rp, okP)}
		seen := okP
		for _, r := range refs {
			v, ok := b.ratio(st.name, r, "plain")
			seen = seen || ok
			cells = append(cells, fmtRatio(v, ok))
		}
		for _, r := range refs {
			cells = append(cells, fmtRatio(b.ratio(st.name, "mysecure", r)))
		}
		if seen {
			fmt.Printf("| %s | %s | %s |\n", st.title, st.unit, strings.Join(cells, " | "))
		}
	}
	fmt.Println()
	if b.cfg.sysbench {
		var parts []string
		for _, t := range allTargets {
			if t == "plain" || !b.hasTarget(t) {
				continue
			}
			// Transactions: tps over sysbench's --time (wall also counts
			// its start and connects).
			v, n := b.medianOf(t, "sb-tps", func(s sample) float64 {
				return s.srvCPU.Seconds() * 1000 / (s.value * float64(b.cfg.sbTime))
			})
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s %.3f", t, v))
			}
		}
		fmt.Printf("FUSE server CPU per sysbench transaction, ms (median of rounds; server CPU ÷ (tps × sysbench time)): %s\n\n", strings.Join(parts, ", "))
	}
}
