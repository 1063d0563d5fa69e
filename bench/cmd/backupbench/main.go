// Command backupbench is the measuring half of bench/backup.sh: it runs one
// command and records its wall time and peak RSS, and it turns the recorded
// runs into the Markdown table of docs/performance-backup.md.
//
//	backupbench run -out FILE -case CASE -tool TOOL [-round N] [-stdout FILE] -- ARGV...
//	backupbench report FILE
//	backupbench catalog < (mysecure backup list --json)
//
// run starts ARGV (no shell: pipelines are passed as bash -c '...'), polls
// VmHWM in /proc/PID/status of that process every 2 ms while it runs and
// appends one JSON line to FILE: wall seconds, the last VmHWM seen (the
// process's own peak RSS, its children excluded) and, for comparison, the
// wait4 ru_maxrss (the largest of the process and the children it waited
// for, e.g. mariadb-dump). It exits with ARGV's status.
//
// report groups the lines by case; in each case the tool named
// "reference" is the baseline. A ratio is the median over rounds of
// (tool's wall time / reference's wall time in the same round), so one
// noisy round moves one sample, not the answer. It prints "met"/"NOT met"
// against the targets below and never fails on a missed target.
//
// catalog prints "ID TYPE PLAIN_BYTES STORED_BYTES" for every backup of a
// `mysecure backup list --json`, oldest first (the script needs no jq).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Targets: the largest wall-time ratio to the reference, and the largest
// peak RSS of mysecure in MiB.
const (
	maxRatio  = 1.10
	maxRSSMiB = 64
)

type record struct {
	Case    string  `json:"case"`
	Tool    string  `json:"tool"`
	Round   int     `json:"round"`
	Wall    float64 `json:"wall_s"`
	HWMKiB  int64   `json:"vmhwm_kib"`  // polled VmHWM of the process itself
	RusKiB  int64   `json:"maxrss_kib"` // wait4 ru_maxrss (includes waited-for children)
	CPU     float64 `json:"cpu_s"`      // user+system seconds of the process and its waited-for children
	Samples int     `json:"samples"`
	Argv    string  `json:"argv"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "catalog":
		err = catalog()
	case "report":
		if len(os.Args) != 3 {
			usage()
		}
		err = report(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(max(ee.ExitCode(), 1))
		}
		fmt.Fprintln(os.Stderr, "backupbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: backupbench run -out FILE -case CASE -tool TOOL [-round N] [-stdout FILE] -- ARGV...\n       backupbench report FILE\n       backupbench catalog < LIST.json")
	os.Exit(2)
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	out := fs.String("out", "", "append the JSON record to `FILE`")
	cs := fs.String("case", "", "case name")
	tool := fs.String("tool", "", "tool name (reference is the baseline)")
	round := fs.Int("round", 0, "round number")
	stdout := fs.String("stdout", "", "write the command's standard output to `FILE` (default: inherit)")
	stderr := fs.String("stderr", "", "append the command's standard error to `FILE` (default: inherit)")
	logf := fs.String("log", "", "also append the progress line to `FILE`")
	fs.Parse(args)
	argv := fs.Args()
	if *out == "" || *cs == "" || *tool == "" || len(argv) == 0 {
		usage()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if *stdout != "" {
		f, err := os.Create(*stdout)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if *stderr != "" {
		f, err := os.OpenFile(*stderr, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	type poll struct {
		hwm     int64
		samples int
	}
	res := make(chan poll, 1)
	go func() {
		var p poll
		path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v, ok := vmHWM(path); ok && v > p.hwm {
				p.hwm = v
			}
			p.samples++
			select {
			case <-done:
				res <- p
				return
			case <-t.C:
			}
		}
	}()
	werr := cmd.Wait()
	wall := time.Since(start).Seconds()
	close(done)
	p := <-res
	var rus int64
	var cpu float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rus = ru.Maxrss
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if werr != nil {
		fmt.Fprintf(os.Stderr, "backupbench: %s %s round %d failed after %.1fs: %v\n", *cs, *tool, *round, wall, werr)
		return werr
	}
	rec := record{Case: *cs, Tool: *tool, Round: *round, Wall: wall, HWMKiB: p.hwm, RusKiB: rus, CPU: cpu, Samples: p.samples, Argv: strings.Join(argv, " ")}
	b, _ := json.Marshal(rec)
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	line := fmt.Sprintf("  %-16s %-19s round %d: %7.2f s  cpu %6.2f s  VmHWM %6.1f MiB  ru_maxrss %6.1f MiB\n", *cs, *tool, *round, wall, cpu, float64(p.hwm)/1024, float64(rus)/1024)
	os.Stderr.WriteString(line)
	if *logf != "" {
		if lf, lerr := os.OpenFile(*logf, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); lerr == nil {
			lf.WriteString(line)
			lf.Close()
		}
	}
	return err
}

// vmHWM reads "VmHWM:   1234 kB" from a status file. A process that has
// exited (a zombie) has no Vm lines.
func vmHWM(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var cases []string
	tools := map[string][]string{}
	by := map[[2]string][]record{}
	for _, r := range recs {
		if !slices.Contains(cases, r.Case) {
			cases = append(cases, r.Case)
		}
		if !slices.Contains(tools[r.Case], r.Tool) {
			tools[r.Case] = append(tools[r.Case], r.Tool)
		}
		k := [2]string{r.Case, r.Tool}
		by[k] = append(by[k], r)
	}

	fmt.Println("| case | tool | runs | wall, each run (s) | median wall (s) | ratio to reference | target ≤ 1.10x | CPU s, median | mysecure peak RSS, median (max) |")
	fmt.Println("|---|---|---|---|---|---|---|---:|---|")
	for _, c := range cases {
		ref := by[[2]string{c, "reference"}]
		refByRound := map[int]float64{}
		for _, r := range ref {
			refByRound[r.Round] = r.Wall
		}
		for _, t := range tools[c] {
			rs := by[[2]string{c, t}]
			var walls, ratios, rss, cpus []float64
			var each []string
			for _, r := range rs {
				walls = append(walls, r.Wall)
				cpus = append(cpus, r.CPU)
				each = append(each, fmt.Sprintf("%.2f", r.Wall))
				if w, ok := refByRound[r.Round]; ok && w > 0 {
					ratios = append(ratios, r.Wall/w)
				}
				rss = append(rss, float64(r.HWMKiB)/1024)
			}
			ratio, target, mem := "—", "—", "—"
			if t != "reference" && len(ratios) > 0 {
				m := median(ratios)
				ratio = fmt.Sprintf("%.3fx", m)
				target = "met"
				if m > maxRatio {
					target = "NOT met"
				}
			}
			if t != "reference" {
				mx := slices.Max(rss)
				mem = fmt.Sprintf("%.1f MiB (%.1f)", median(rss), mx)
				if mx > maxRSSMiB {
					mem += " NOT met"
				}
			}
			fmt.Printf("| %s | %s | %d | %s | %.2f | %s | %s | %.2f | %s |\n", c, t, len(rs), strings.Join(each, ", "), median(walls), ratio, target, median(cpus), mem)
		}
	}
	fmt.Println()
	fmt.Println("Peak RSS is VmHWM of the mysecure process itself, polled every 2 ms (children such as")
	fmt.Println("mariadb-dump excluded); ru_maxrss from wait4, which includes the children mysecure waited for.")
	fmt.Println("CPU s is user+system time of the command and the children it waited for (mariadb-dump,")
	fmt.Println("mariabackup, mariadb, zstd; not mariadbd).")
	fmt.Println()
	for _, c := range cases {
		for _, t := range tools[c] {
			if t == "reference" {
				continue
			}
			var ru []string
			for _, r := range by[[2]string{c, t}] {
				ru = append(ru, fmt.Sprintf("%.1f", float64(r.RusKiB)/1024))
			}
			fmt.Printf("  %s / %s: ru_maxrss %s MiB\n", c, t, strings.Join(ru, ", "))
		}
	}
	return nil
}

func catalog() error {
	var list struct {
		Backups []struct {
			ID          string `json:"id"`
			Type        string `json:"type"`
			PlainBytes  int64  `json:"plain_bytes"`
			StoredBytes int64  `json:"stored_bytes"`
		} `json:"backups"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&list); err != nil {
		return fmt.Errorf("backup list --json: %w", err)
	}
	for _, b := range list.Backups {
		fmt.Println(b.ID, b.Type, b.PlainBytes, b.StoredBytes)
	}
	return nil
}
