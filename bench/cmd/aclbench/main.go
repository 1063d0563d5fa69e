// Command aclbench measures what the access rules cost a program that is
// allowed to read plaintext: opens per second of small files through a
// mysecure FUSE mount with the rules off and with the rules on, in one run.
//
// It sets up what `mysecure init`, `mysecure acl add` and the daemon set
// up: a real volume (volume.Create, one category, a cheap KDF), the rule
// file written with acl.SaveRules under the volume's rules subkey, and a
// real daemon.Daemon made with daemon.New from that volume and its keys
// (it loads and authenticates the rule file and wires its own
// acl.Identifier and acl.Engine). The daemon is neither mounted nor
// serving its control socket: this process mounts its own fusefs.FS,
// keyed from the same volume as daemon.New keys the daemon's, whose
// Authorizer is swapped atomically between
//
//   - rules off: an Authorizer that allows every open without identifying
//     the caller;
//   - rules on: (*daemon.Daemon).Authorize itself, in enforcing mode with
//     allows not logged (the defaults), against about 20 rules for other
//     programs then one ALLOW rule for openread's path and fingerprint.
//
// and times bench/cmd/openread, run as a child process (FUSE then sees
// another process, as it sees mysqldump), doing N × (open, read whole file,
// close) round robin over FILES small files of one category; and the same
// on a plain tmpfs copy of the files, for reference.
//
// One mount serves both configurations, so the kernel's dentry and inode
// caches, the go-fuse node tree and the store's page cache are the same
// for both, which a remount would not guarantee. The swap costs one atomic
// load per open in both configurations. Every open(2) reaches the
// filesystem as a FUSE OPEN (the kernel never answers an open from a
// cache); since fusefs returns FOPEN_KEEP_CACHE, the reads after the
// warm-up are served from the kernel's page cache, so an open+read+close
// is, on the server side, mostly OPEN, FLUSH and RELEASE, and the decision
// weighs more than when every read was a FUSE READ. The harness checks
// that the Authorizer ran exactly N times per child run and FS.Opens()
// grew by N, and, with the rules on, that the daemon counted N allows
// (rules off: none).
// The configurations alternate (off, on in odd rounds; on, off in even
// ones) after one untimed warm-up pass of each.
//
// It prints Markdown: the setup, one line per run, the medians, the ratio
// on/off (median of per-round ratios, with its range) and the daemon's
// counters from d.Status() (`binaries_hashed`, allows, denials, as
// `mysecure status` shows them): openread's binary must be hashed once in
// the whole run. It never fails on a missed target; it exits 1 when
// something could not be run.
//
//	usage: aclbench [-openread BIN] [-work DIR] [-files 1000] [-size 2048]
//	                [-opens 10000] [-rounds 5] [-profile DIR]
//
// It needs root and /dev/fuse. bench/acl.sh builds and runs it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/fusefs"
	"github.com/mysecure/mysecure/encfs/volume"
)

// category is the category the benchmark files live in.
const category = "bench"

type options struct {
	openread string
	work     string
	files    int
	size     int
	opens    int
	rounds   int
	profile  string
	goCmd    string
}

func main() {
	var o options
	flag.StringVar(&o.openread, "openread", "", "openread binary (default: built with `go build` into the work dir)")
	flag.StringVar(&o.work, "work", "", "existing empty directory for store, mount and files (default: a new temp dir in /dev/shm, else $TMPDIR)")
	flag.IntVar(&o.files, "files", 1000, "number of small files")
	flag.IntVar(&o.size, "size", 2048, "size of each file in bytes")
	flag.IntVar(&o.opens, "opens", 10000, "open+read+close per openread run")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds (each runs plain, rules off and rules on once)")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of this process (the FUSE server) per timed run: DIR/on-R.prof, DIR/off-R.prof")
	flag.StringVar(&o.goCmd, "go", envOr("GO", "go"), "go command used to build openread")
	flag.Parse()
	if flag.NArg() != 0 || o.files <= 0 || o.size <= 0 || o.opens <= 0 || o.rounds <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	b := &bench{o: o}
	// Ctrl-C or a kill must not leave a mount behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		b.cleanup()
		if s == syscall.SIGINT {
			os.Exit(130)
		}
		os.Exit(143)
	}()
	err := b.run()
	b.cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "aclbench: error: %v\n", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// bench is one run.
type bench struct {
	o        options
	work     string
	ownsWork bool // created here: removed entirely on exit
	mnt      string
	srv      *fuse.Server
	fsys     *fusefs.FS
	sw       *switchAuth
	keys     *volume.Keys
	d        *daemon.Daemon // rules on: its Authorize

	cleanOnce sync.Once
}

func (b *bench) cleanup() {
	b.cleanOnce.Do(func() {
		if b.srv != nil {
			if err := b.srv.Unmount(); err != nil {
				// Busy (a child still running after a signal): detach.
				_ = syscall.Unmount(b.mnt, syscall.MNT_DETACH)
			}
		}
		// The daemon's Close closes its audit log and wipes the keys.
		if b.d != nil {
			b.d.Close()
		} else if b.keys != nil {
			b.keys.Wipe()
		}
		if b.work == "" {
			return
		}
		if b.ownsWork {
			os.RemoveAll(b.work)
			return
		}
		for _, d := range []string{"store", "mnt", "plain", "bin", "scripts", "run", "audit"} {
			os.RemoveAll(filepath.Join(b.work, d))
		}
	})
}

// sample is one timed openread run.
type sample struct {
	round     int
	config    string // "plain", "off", "on"
	opensPerS float64
	elapsed   time.Duration
	serverCPU time.Duration // user+system CPU of this process during the run
	authCalls uint64        // Authorize calls during the run
	authNs    uint64        // time spent inside the inner Authorizer
	fsOpens   uint64        // fusefs.FS.Opens() delta
	allows    uint64        // the daemon's allows delta (Status().Allows)
	denials   uint64        // the daemon's denials delta (Status().Denials)
}

func (b *bench) run() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (the mount uses mount(2) directly and allow_other)")
	}
	if err := b.makeWork(); err != nil {
		return err
	}
	openread, err := b.locateOpenread()
	if err != nil {
		return err
	}
	store := filepath.Join(b.work, "store")
	b.mnt = filepath.Join(b.work, "mnt")
	plain := filepath.Join(b.work, "plain")
	for _, d := range []string{b.mnt, plain} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}

	// A real volume (cheap KDF: unlocking is not what is measured).
	vol, keys, err := volume.Create(store, volume.CreateOptions{Categories: []string{category}},
		volume.NewPassphrase{
			Passphrase: volume.Passphrase{Passphrase: []byte("x"), Salt: []byte("y")},
			KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1},
		})
	if err != nil {
		return fmt.Errorf("failed to create the volume: %w", err)
	}
	b.keys = keys

	// The rule file, written as `mysecure acl add` writes it, before the
	// daemon starts: daemon.New loads and authenticates it. The programs
	// are fingerprinted by an Identifier of the harness (the daemon's
	// own Identifier then starts with nothing hashed).
	filler := acl.NewIdentifier(acl.IdentifierOptions{})
	scripts := filepath.Join(b.work, "scripts")
	rs, skipped, err := otherRules(filler, scripts)
	if err != nil {
		return err
	}
	waited, err := waitCacheable(openread)
	if err != nil {
		return err
	}
	own, err := acl.ParseRule("ALLOW @" + category + " data/* " + openread)
	if err != nil {
		return fmt.Errorf("failed to parse openread's rule: %w", err)
	}
	if err := filler.FillRule(&own); err != nil {
		return fmt.Errorf("failed to fill openread's rule: %w", err)
	}
	rs.Rules = append(rs.Rules, own)
	rulesKey, err := keys.Subkey(volume.PurposeRules, "")
	if err != nil {
		return err
	}
	err = acl.SaveRules(filepath.Join(store, daemon.RulesFile), rs, rulesKey)
	clear(rulesKey)
	if err != nil {
		return err
	}

	// The real daemon, neither mounted nor serving its control socket:
	// the harness mounts its own fusefs and calls d.Authorize from it.
	b.d, err = daemon.New(daemon.Config{
		Store:    store,
		Mount:    b.mnt,
		Socket:   filepath.Join(b.work, "run", "control.sock"),
		AuditLog: filepath.Join(b.work, "audit", "access.log"),
	}, vol, keys)
	if err != nil {
		return fmt.Errorf("failed to start the daemon: %w", err)
	}
	st := b.d.Status()
	if st.Rules != len(rs.Rules) || st.DenyAll != "" || st.Mode != daemon.Enforcing {
		return fmt.Errorf("daemon status after start: %d rules (want %d), mode %s (want %s), deny_all %q",
			st.Rules, len(rs.Rules), st.Mode, daemon.Enforcing, st.DenyAll)
	}
	hashesStart := st.Hashes

	// The harness's mount, keyed as daemon.New keys the daemon's.
	ck, err := daemon.MountKeys(vol, keys)
	if err != nil {
		return err
	}
	b.sw = &switchAuth{}
	b.sw.set(allowAll{})
	b.fsys, err = fusefs.New(fusefs.Options{Store: store, Keys: ck, Auth: b.sw})
	if err != nil {
		return fmt.Errorf("failed to create the filesystem: %w", err)
	}
	b.srv, err = b.fsys.Mount(b.mnt)
	if err != nil {
		return fmt.Errorf("failed to mount %s: %w", b.mnt, err)
	}
	encDir := filepath.Join(b.mnt, category, "data")
	t0 := time.Now()
	if err := makeFiles(encDir, plain, b.o.files, b.o.size); err != nil {
		return err
	}
	created := time.Since(t0)

	configs := map[string]fusefs.Authorizer{"off": allowAll{}, "on": b.d}
	dirs := map[string]string{"plain": plain, "off": encDir, "on": encDir}

	b.header(openread, len(rs.Rules), skipped, created, waited)
	printRules(rs)

	// Warm-up: one untimed pass over every file in each configuration.
	for _, c := range []string{"plain", "off", "on"} {
		if _, err := b.timed(openread, dirs[c], c, configs[c], b.o.files, 0, ""); err != nil {
			return fmt.Errorf("warm-up (%s): %w", c, err)
		}
	}
	if b.o.profile != "" {
		if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
			return err
		}
	}

	fmt.Println("## Runs")
	fmt.Println()
	fmt.Println("| round | config | opens/s | elapsed s | server CPU µs/open | Authorize µs/call | Authorize calls | FS opens |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|")
	var samples []sample
	for r := 1; r <= b.o.rounds; r++ {
		order := []string{"plain", "off", "on"}
		if r%2 == 0 {
			order = []string{"plain", "on", "off"}
		}
		for _, c := range order {
			prof := ""
			if b.o.profile != "" && c != "plain" {
				prof = filepath.Join(b.o.profile, fmt.Sprintf("%s-%d.prof", c, r))
			}
			s, err := b.timed(openread, dirs[c], c, configs[c], b.o.opens, r, prof)
			if err != nil {
				return fmt.Errorf("round %d (%s): %w", r, c, err)
			}
			n := uint64(b.o.opens)
			if c != "plain" && (s.authCalls != n || s.fsOpens != n) {
				return fmt.Errorf("round %d (%s): %d opens by openread but %d Authorize calls and %d FS opens: not every open reached the filesystem",
					r, c, b.o.opens, s.authCalls, s.fsOpens)
			}
			if c == "on" && (s.allows != n || s.denials != 0) {
				return fmt.Errorf("round %d (on): %d opens by openread but the daemon counted %d allows and %d denials",
					r, b.o.opens, s.allows, s.denials)
			}
			if c == "off" && (s.allows != 0 || s.denials != 0) {
				return fmt.Errorf("round %d (off): the daemon decided %d opens: rules off must not reach it", r, s.allows+s.denials)
			}
			samples = append(samples, s)
			fmt.Printf("| %d | %s | %.0f | %.3f | %.1f | %s | %d | %d |\n", r, label(c), s.opensPerS, s.elapsed.Seconds(),
				perOpen(s.serverCPU, b.o.opens), authPerCall(s), s.authCalls, s.fsOpens)
		}
	}
	fmt.Println()
	b.summary(samples, hashesStart)
	return identifyCost()
}

func label(c string) string {
	switch c {
	case "plain":
		return "plain tmpfs (reference)"
	case "off":
		return "mount, rules off"
	}
	return "mount, rules on"
}

func perOpen(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n) }

func authPerCall(s sample) string {
	if s.authCalls == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(s.authNs)/1e3/float64(s.authCalls))
}

func (b *bench) makeWork() error {
	if b.o.work != "" {
		b.work = b.o.work
		return nil
	}
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() || syscall.Access(base, 2) != nil {
		base = os.TempDir()
	}
	w, err := os.MkdirTemp(base, "mysecure-acl-bench.")
	if err != nil {
		return err
	}
	b.work, b.ownsWork = w, true
	return nil
}

// locateOpenread returns the absolute, symlink-free path of openread
// (what /proc/PID/exe shows), building it when -openread is not given.
func (b *bench) locateOpenread() (string, error) {
	p := b.o.openread
	if p == "" {
		if err := os.MkdirAll(filepath.Join(b.work, "bin"), 0o755); err != nil {
			return "", err
		}
		p = filepath.Join(b.work, "bin", "openread")
		cmd := exec.Command(b.o.goCmd, "build", "-o", p, "github.com/mysecure/mysecure/bench/cmd/openread")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("failed to build openread (run from inside the module, or give -openread): %w", err)
		}
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// makeFiles writes n random files of size bytes through the mount into
// encDir and the same plaintext into plainDir, and checks one read back.
func makeFiles(encDir, plainDir string, n, size int) error {
	if err := os.Mkdir(encDir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", encDir, err)
	}
	data := make([]byte, size)
	var first []byte
	for i := range n {
		if _, err := rand.Read(data); err != nil {
			return err
		}
		name := fmt.Sprintf("f%05d.dat", i)
		if err := os.WriteFile(filepath.Join(encDir, name), data, 0o644); err != nil {
			return fmt.Errorf("failed to write through the mount: %w", err)
		}
		if err := os.WriteFile(filepath.Join(plainDir, name), data, 0o644); err != nil {
			return err
		}
		if i == 0 {
			first = slices.Clone(data)
		}
	}
	got, err := os.ReadFile(filepath.Join(encDir, "f00000.dat"))
	if err != nil {
		return fmt.Errorf("failed to read back through the mount: %w", err)
	}
	if !bytes.Equal(got, first) {
		return errors.New("file read back through the mount differs from what was written")
	}
	return nil
}

// otherRules are rules for programs other than openread, as a MariaDB
// host might have: mariadbd and its tools, backups, scripts with --shell
// and --children, DENY rules for viewers on every category. Their
// programs are fingerprinted with FillRule; rules whose program is not
// installed are skipped (and counted). The volume has only @bench: rules
// for @mysql, @mysqlbackup and @archive are accepted by acl.SaveRules and
// the daemon's rule loading (only `mysecure acl add` checks the volume's
// categories), and the engine passes over them on the category test, as
// it passes over rules for another category of a volume that has it.
func otherRules(ident *acl.Identifier, scripts string) (*acl.RuleSet, int, error) {
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		return nil, 0, err
	}
	report := filepath.Join(scripts, "report.sh")
	backup := filepath.Join(scripts, "backup.sh")
	if err := os.WriteFile(report, []byte("#!/bin/bash\ndf -h /var/lib/mysql\nls -l /var/lib/mysql\n"), 0o755); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(backup, []byte("#!/bin/bash\ntar -czf /backup/archive.tgz /var/lib/mysql\n"), 0o755); err != nil {
		return nil, 0, err
	}
	lines := []string{
		"ALLOW @mysql * /usr/sbin/mariadbd --user=mysql",
		"ALLOW @mysql * /usr/bin/mariadb-backup --user=mysql,0",
		"ALLOW @mysql *.cnf /usr/bin/mariadb --user=0",
		"ALLOW @mysqlbackup * /usr/bin/mariadb-dump",
		"ALLOW @mysqlbackup * /usr/bin/rsync --user=0",
		"ALLOW @archive * /usr/bin/tar --children=/usr/bin/gzip,/usr/bin/bzip2,/usr/bin/xz",
		"ALLOW @archive * /usr/bin/openssl --user=0",
		"ALLOW @" + category + " reports/* " + report + " --shell=/usr/bin/bash --children=/usr/bin/df,/usr/bin/ls",
		"ALLOW @archive backup/* " + backup + " --shell=/usr/bin/bash --children=/usr/bin/tar,/usr/bin/gzip",
		"ALLOW @" + category + " exports/* /usr/bin/sha256sum",
		"ALLOW @" + category + " *.csv /usr/bin/python3",
		"ALLOW @" + category + " *.log /usr/bin/grep --user=0",
		"ALLOW @mysql * /usr/bin/cp --user=0",
		"DENY @* *.cnf /usr/bin/cat",
		"DENY @* * /usr/bin/less",
		"DENY @* * /usr/bin/dd",
		"DENY @" + category + " * /usr/bin/perl",
		"DENY @mysql * /usr/bin/find",
		"DENY @* *.key /usr/bin/head",
		"DENY @* *.key /usr/bin/tail",
	}
	rs := &acl.RuleSet{}
	skipped := 0
	for _, l := range lines {
		r, err := acl.ParseRule(l)
		if err != nil {
			return nil, 0, fmt.Errorf("bad benchmark rule %q: %w", l, err)
		}
		if err := ident.FillRule(&r); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				skipped++
				continue
			}
			return nil, 0, fmt.Errorf("failed to fill rule %q: %w", l, err)
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs, skipped, nil
}

// minAge is how old a file's ctime must be before acl's fingerprint cache
// keeps its hash (acl.defaultMinCacheAge is 2 s), with a margin.
const minAge = 2500 * time.Millisecond

// waitCacheable waits until path is old enough for the fingerprint cache:
// a binary built a moment ago would otherwise be hashed again on every
// open until it is 2 s old, which is the cache's defence against coarse
// timestamps, not the steady state being measured.
func waitCacheable(path string) (time.Duration, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	age := time.Since(time.Unix(st.Ctim.Unix()))
	if age >= minAge {
		return 0, nil
	}
	time.Sleep(minAge - age)
	return minAge - age, nil
}

func printRules(rs *acl.RuleSet) {
	fmt.Println("## Rules (rules on)")
	fmt.Println()
	fmt.Println("```")
	for _, r := range rs.Rules {
		fmt.Println(r.String())
	}
	fmt.Println("```")
	fmt.Println()
}

func (b *bench) header(openread string, nrules, skipped int, created, waited time.Duration) {
	fmt.Println("## Setup")
	fmt.Println()
	fmt.Printf("- work dir: %s (store, mount, plain copy; removed on exit)\n", b.work)
	fmt.Printf("- files: %d × %d B in @%s/data, written through the mount in %.2f s; same files in a plain tmpfs dir\n",
		b.o.files, b.o.size, category, created.Seconds())
	fmt.Printf("- per run: `openread DIR %d` (open, read to EOF, close; round robin), as a child process; %d rounds after one untimed warm-up pass of each config\n",
		b.o.opens, b.o.rounds)
	fmt.Printf("- openread: %s\n", openread)
	fmt.Printf("- volume: volume.Create, category @%s; rule file %s written with acl.SaveRules before daemon.New\n", category, daemon.RulesFile)
	fmt.Printf("- rules on: (*daemon.Daemon).Authorize of a daemon.New daemon (enforcing, allows not logged), %d rules (%d for other programs, then openread's ALLOW; %d skipped: program not installed)\n",
		nrules, nrules-1, skipped)
	if waited > 0 {
		fmt.Printf("- waited %.1f s before the first run: acl caches a hash (and a process's identity) only for files whose ctime is more than 2 s old\n", waited.Seconds())
	}
	fmt.Printf("- GOMAXPROCS %d, %d CPUs, load %s (1, 5, 15 min)\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAvg())
	if b.o.profile != "" {
		fmt.Printf("- CPU profiles of this process per timed run in %s\n", b.o.profile)
	}
	fmt.Println()
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// openreadResult is openread's JSON line.
type openreadResult struct {
	Opens     int     `json:"opens"`
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`
	ElapsedNs int64   `json:"elapsed_ns"`
	OpensPerS float64 `json:"opens_per_s"`
}

// timed runs openread once on dir with the Authorizer auth (nil for the
// plain directory) and returns what it measured.
func (b *bench) timed(openread, dir, config string, auth fusefs.Authorizer, n, round int, prof string) (sample, error) {
	if auth != nil {
		b.sw.set(auth)
	}
	calls0, ns0, opens0 := b.sw.calls.Load(), b.sw.ns.Load(), b.fsys.Opens()
	st0 := b.d.Status()
	var out, errb bytes.Buffer
	cmd := exec.Command(openread, dir, strconv.Itoa(n))
	cmd.Stdout, cmd.Stderr = &out, &errb
	var pf *os.File
	if prof != "" {
		var err error
		if pf, err = os.Create(prof); err != nil {
			return sample{}, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return sample{}, err
		}
	}
	cpu0 := selfCPU()
	err := cmd.Run()
	cpu1 := selfCPU()
	if pf != nil {
		pprof.StopCPUProfile()
		pf.Close()
	}
	if err != nil {
		return sample{}, fmt.Errorf("openread failed: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var res openreadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return sample{}, fmt.Errorf("bad openread output %q: %w", out.String(), err)
	}
	if res.Opens != n || res.Bytes != int64(n)*int64(b.o.size) {
		return sample{}, fmt.Errorf("openread did %d opens and read %d bytes, want %d and %d", res.Opens, res.Bytes, n, int64(n)*int64(b.o.size))
	}
	s := sample{
		round: round, config: config, opensPerS: res.OpensPerS,
		elapsed:   time.Duration(res.ElapsedNs),
		serverCPU: cpu1 - cpu0,
	}
	if config != "plain" {
		s.authCalls = b.sw.calls.Load() - calls0
		s.authNs = b.sw.ns.Load() - ns0
		s.fsOpens = b.fsys.Opens() - opens0
	}
	st1 := b.d.Status()
	s.allows, s.denials = st1.Allows-st0.Allows, st1.Denials-st0.Denials
	return s, nil
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (b *bench) summary(samples []sample, hashesStart uint64) {
	by := map[string][]sample{}
	for _, s := range samples {
		by[s.config] = append(by[s.config], s)
	}
	fmt.Println("## Summary (medians over rounds)")
	fmt.Println()
	fmt.Println("| config | opens/s | min..max | µs/open | server CPU µs/open | Authorize µs/call |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	med := map[string]float64{}
	medCPU := map[string]float64{}
	for _, c := range []string{"plain", "off", "on"} {
		ss := by[c]
		rates := collect(ss, func(s sample) float64 { return s.opensPerS })
		cpu := collect(ss, func(s sample) float64 { return perOpen(s.serverCPU, b.o.opens) })
		auth := "-"
		if c != "plain" {
			auth = fmt.Sprintf("%.1f", median(collect(ss, func(s sample) float64 {
				return float64(s.authNs) / 1e3 / float64(s.authCalls)
			})))
		}
		med[c] = median(rates)
		medCPU[c] = median(cpu)
		fmt.Printf("| %s | %.0f | %.0f..%.0f | %.1f | %.1f | %s |\n", label(c), med[c], slices.Min(rates), slices.Max(rates),
			1e6/med[c], median(cpu), auth)
	}
	fmt.Println()

	// Per-round ratio: both halves of a pair run seconds apart.
	var ratios []float64
	for r := 1; r <= b.o.rounds; r++ {
		var off, onr float64
		for _, s := range samples {
			if s.round == r && s.config == "off" {
				off = s.opensPerS
			}
			if s.round == r && s.config == "on" {
				onr = s.opensPerS
			}
		}
		ratios = append(ratios, onr/off)
	}
	ratio := median(ratios)
	overhead := 1/ratio - 1
	fmt.Printf("| ratio | value |\n|---|---:|\n")
	fmt.Printf("| rules on / rules off, opens/s (median of per-round ratios) | **%.3f** (%.3f..%.3f) |\n", ratio, slices.Min(ratios), slices.Max(ratios))
	fmt.Printf("| rules on / rules off, opens/s (ratio of medians) | %.3f |\n", med["on"]/med["off"])
	fmt.Printf("| time per open added by the rules (1/ratio - 1) | **%+.1f %%** |\n", overhead*100)
	fmt.Printf("| server CPU per open added by the rules (median on - median off) | %.1f µs (%+.1f %%) |\n",
		medCPU["on"]-medCPU["off"], (medCPU["on"]/medCPU["off"]-1)*100)
	fmt.Printf("| mount rules off / plain tmpfs, opens/s | %.3f |\n", med["off"]/med["plain"])
	fmt.Println()
	st := b.d.Status()
	fmt.Println("Daemon counters (`d.Status()`, what `mysecure status` shows):")
	fmt.Println()
	fmt.Printf("- binaries_hashed: %d after daemon.New (the rules were fingerprinted by the harness), %d after all runs\n", hashesStart, st.Hashes)
	fmt.Printf("- allows %d, denials %d (warm-up included); audit log %s\n", st.Allows, st.Denials, auditSize(st.AuditLog))
	verdictHash := "yes"
	if st.Hashes-hashesStart != 1 {
		verdictHash = "NO"
	}
	fmt.Printf("- **openread's binary hashed %d time(s)** in %d decisions (once: %s)\n", st.Hashes-hashesStart, st.Allows+st.Denials, verdictHash)
	fmt.Println()
	verdict := "met"
	if overhead > 0.10 {
		verdict = "NOT met"
	}
	fmt.Printf("Overhead target (rules on at most 10 %% slower than rules off): %s (%+.1f %%)\n", verdict, overhead*100)
	fmt.Println()
}

func collect(ss []sample, f func(sample) float64) []float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// auditSize describes the audit log: allows are not logged by default, so
// it must stay empty.
func auditSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return fmt.Sprintf("%d bytes", fi.Size())
}

// identifyCost times acl.Identifier.Identify alone on a sleeping child, in
// a fresh Identifier wired like the daemon's, for the reader of a profile:
// the part of an open's decision that reads /proc. The first call hashes
// /usr/bin/sleep and opens the per-process cache entry; the timed calls
// are cache hits, as every open of openread after its first one is.
func identifyCost() error {
	ident := acl.NewIdentifier(acl.IdentifierOptions{})
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start sleep: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if _, err := ident.Identify(pid); err != nil {
		return err
	}
	const k = 2000
	t0 := time.Now()
	for range k {
		if _, err := ident.Identify(pid); err != nil {
			return err
		}
	}
	idNs := time.Since(t0).Nanoseconds() / k
	fmt.Printf("Decision part timed alone in this process (%d calls on a sleeping child, per-process cache hits): acl.Identifier.Identify %.1f µs/call\n",
		k, float64(idNs)/1e3)
	fmt.Println()
	return nil
}

// switchAuth is the mount's Authorizer: it forwards to the current
// configuration's Authorizer, counts calls and times them.
type switchAuth struct {
	cur   atomic.Pointer[authBox]
	calls atomic.Uint64
	ns    atomic.Uint64
}

type authBox struct{ a fusefs.Authorizer }

func (s *switchAuth) set(a fusefs.Authorizer) { s.cur.Store(&authBox{a}) }

func (s *switchAuth) Authorize(ctx context.Context, req fusefs.AccessRequest) syscall.Errno {
	t0 := time.Now()
	errno := s.cur.Load().a.Authorize(ctx, req)
	s.ns.Add(uint64(time.Since(t0).Nanoseconds()))
	s.calls.Add(1)
	return errno
}

// allowAll is "rules off": every open allowed, nobody identified.
type allowAll struct{}

func (allowAll) Authorize(context.Context, fusefs.AccessRequest) syscall.Errno { return 0 }
