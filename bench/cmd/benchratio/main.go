// Command benchratio reads `go test -bench` output of package bench and
// prints the median MB/s of every benchmark and the format/raw throughput
// ratios the content format is held to, as Markdown tables.
//
// The k-th result of a format benchmark is paired with the k-th result of
// its raw baseline (a round); a ratio is the median over rounds, so a noisy
// neighbour slowing one round moves one sample, not the answer. Run the
// benchmarks as rounds (the test binary N times with -test.count=1, as
// bench/format.sh does) so that both halves of a pair are measured seconds
// apart; -count N output is accepted too, its pairs are just further apart.
//
// It measures nothing itself and never fails on a missed target: it prints
// "met" or "NOT met" and exits 0. It exits 1 only on unreadable input.
//
//	usage: benchratio [FILE...]   (standard input when no FILE)
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// pair is a ratio printed: format benchmark over raw baseline, and the
// target it must reach (0 for ratios shown for information).
type pair struct {
	format, raw string
	target      float64
}

// pairs lists the ratios in print order. Names are benchmark names without
// the "Benchmark" prefix and the -GOMAXPROCS suffix.
var pairs = []pair{
	{"FormatSeal", "RawGCM", 0.9},
	{"FormatOpenBlocks", "RawGCMOpen", 0.9},
	{"FormatOpen", "RawGCMOpenCopy", 0},
	{"FormatOpen", "RawGCMOpen", 0},
	{"RawGCMNonce16", "RawGCM", 0},
	{"FileWriteAt/4KiB", "RawGCM", 0},
	{"FileWriteAt/128KiB", "RawGCM", 0},
	{"FileWriteAt/1MiB", "RawGCM", 0},
	{"FileReadAt/4KiB", "RawGCMOpen", 0},
	{"FileReadAt/128KiB", "RawGCMOpen", 0},
	{"FileReadAt/1MiB", "RawGCMOpen", 0},
}

// procsSuffix is the "-N" go test appends to names when GOMAXPROCS > 1.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// results maps a benchmark name to its MB/s, one per run, in input order.
type results struct {
	order []string
	mbps  map[string][]float64
}

func parse(r io.Reader, res *results) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] != "MB/s" {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("bad MB/s %q in %q", f[i], sc.Text())
			}
			if _, ok := res.mbps[name]; !ok {
				res.order = append(res.order, name)
			}
			res.mbps[name] = append(res.mbps[name], v)
		}
	}
	return sc.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func main() {
	res := &results{mbps: map[string][]float64{}}
	if len(os.Args) == 1 {
		if err := parse(os.Stdin, res); err != nil {
			fail(err)
		}
	}
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			fail(err)
		}
		err = parse(f, res)
		f.Close()
		if err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
	}
	if len(res.order) == 0 {
		fail(fmt.Errorf("no benchmark results with MB/s in the input"))
	}

	fmt.Println("| benchmark | rounds | median MB/s | min | max |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, name := range res.order {
		v := res.mbps[name]
		fmt.Printf("| %s | %d | %.0f | %.0f | %.0f |\n", name, len(v), median(v), slices.Min(v), slices.Max(v))
	}

	fmt.Println()
	fmt.Println("| ratio | median of per-round ratios | min | max | ratio of medians | target |")
	fmt.Println("|---|---:|---:|---:|---:|---|")
	for _, p := range pairs {
		fv, rv := res.mbps[p.format], res.mbps[p.raw]
		n := min(len(fv), len(rv))
		if n == 0 {
			continue
		}
		ratios := make([]float64, n)
		for i := range n {
			ratios[i] = fv[i] / rv[i]
		}
		m := median(ratios)
		target := "(information)"
		if p.target > 0 {
			verdict := "met"
			if m < p.target {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("≥ %.2fx: %s", p.target, verdict)
		}
		fmt.Printf("| %s / %s | %.3f | %.3f | %.3f | %.3f | %s |\n",
			p.format, p.raw, m, slices.Min(ratios), slices.Max(ratios), median(fv)/median(rv), target)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "benchratio: error: %v\n", err)
	os.Exit(1)
}
