package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// sbUser is the sysbench account (sysbench cannot use unix_socket auth).
const (
	sbUser = "sbench"
	sbPass = "sbench-pw"
)

// mariadb is a sandbox server whose datadir lives on a target.
type mariadb struct {
	t   target
	srv *sandbox.Server
}

// sysbench runs the MariaDB part on plain, mysecure and gocryptfs.
func (b *bench) sysbench(ctx context.Context) error {
	for _, p := range []string{"sysbench", "mariadbd", "mariadb-install-db", "mariadb"} {
		if _, err := lookPath(p); err != nil {
			return err
		}
	}
	var dbs []*mariadb
	for _, t := range b.targets {
		if t.name() == "mysecure-admin" {
			continue
		}
		m, err := b.startMariaDB(ctx, t)
		if err != nil {
			return fmt.Errorf("MariaDB on %s: %w", t.name(), err)
		}
		dbs = append(dbs, m)
	}
	for _, m := range dbs {
		if err := b.step(ctx, m.t, "sb-prepare", 0, func() (result, error) {
			db0 := procCPU(m.srv.Pid())
			_, cpu, err := b.sysbenchCmd(ctx, m, "prepare", 0)
			return result{cpu: cpu + procCPU(m.srv.Pid()) - db0}, err
		}); err != nil {
			return err
		}
	}
	for rep := 0; rep < b.cfg.reps; rep++ {
		for _, m := range rotate(dbs, rep) {
			if err := b.sbRun(ctx, m, "sb-tps", rep, b.cfg.sbTime); err != nil {
				return err
			}
		}
	}
	if b.prof != nil {
		// One run under perf record (CPU, FUSE requests), one under perf
		// trace (system call latencies): apart, so that neither distorts
		// the other.
		for _, step := range []string{"sb-tps", "sb-traced"} {
			for _, m := range dbs {
				if err := b.sbRun(ctx, m, step, profRep, b.cfg.profSb); err != nil {
					return err
				}
			}
		}
	}
	for _, m := range dbs {
		b.progress("stopping MariaDB on %s", m.t.name())
		if err := m.srv.Stop(); err != nil {
			return err
		}
		m.t.rss().sample(m.t.serverPid(), "sb-stop")
	}
	return nil
}

func (b *bench) sbRun(ctx context.Context, m *mariadb, step string, rep, secs int) error {
	return b.step(ctx, m.t, step, rep, func() (result, error) {
		db0 := procCPU(m.srv.Pid())
		out, cpu, err := b.sysbenchCmd(ctx, m, "run", secs)
		if err != nil {
			return result{}, err
		}
		tps, lat, err := parseSysbench(out)
		return result{value: tps, lat95: lat, cpu: cpu + procCPU(m.srv.Pid()) - db0}, err
	})
}

func (b *bench) startMariaDB(ctx context.Context, t target) (*mariadb, error) {
	dir, err := b.mkdir("mysqld-" + t.name())
	if err != nil {
		return nil, err
	}
	o := sandbox.Options{Dir: dir, DataDir: filepath.Join(t.data(), "mariadb")}
	b.progress("mariadb-install-db on %s", t.name())
	if err := sandbox.Init(ctx, o); err != nil {
		return nil, err
	}
	if e, ok := t.(*engineFS); ok {
		if o.Defaults, err = e.serverDefaults(); err != nil {
			return nil, err
		}
	}
	srv, err := sandbox.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.servers = append(b.servers, srv)
	b.mu.Unlock()
	sql := fmt.Sprintf("CREATE DATABASE sbtest; CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; GRANT ALL ON sbtest.* TO '%s'@'localhost';",
		sbUser, sbPass, sbUser)
	if _, err := srv.Client(ctx, sql); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, srv.ErrorLog())
	}
	return &mariadb{t: t, srv: srv}, nil
}

// sysbenchCmd runs sysbench oltp_read_write CMD against m and returns its
// output and CPU time.
func (b *bench) sysbenchCmd(ctx context.Context, m *mariadb, cmd string, secs int) (string, time.Duration, error) {
	args := []string{"oltp_read_write", "--db-driver=mysql",
		"--mysql-socket=" + m.srv.Socket, "--mysql-user=" + sbUser, "--mysql-password=" + sbPass,
		"--mysql-db=sbtest",
		"--tables=" + strconv.Itoa(b.cfg.sbTables), "--table-size=" + strconv.Itoa(b.cfg.sbRows),
		"--threads=" + strconv.Itoa(b.cfg.sbThread)}
	if cmd == "run" {
		args = append(args, "--time="+strconv.Itoa(secs), "--events=0")
	}
	args = append(args, cmd)
	c := exec.CommandContext(ctx, "sysbench", args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.String(), 0, fmt.Errorf("sysbench %s: %v: %s\n%s", cmd, err, tailLines(out.String(), 10), m.srv.ErrorLog())
	}
	return out.String(), c.ProcessState.UserTime() + c.ProcessState.SystemTime(), nil
}

var (
	sbTPS   = regexp.MustCompile(`transactions:\s+\d+\s+\(([0-9.]+) per sec\.\)`)
	sbLat95 = regexp.MustCompile(`95th percentile:\s+([0-9.]+)`)
)

// parseSysbench returns transactions per second and the 95th percentile
// latency in ms of a sysbench run's output.
func parseSysbench(out string) (tps, lat95 float64, err error) {
	m := sbTPS.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no transactions line in sysbench output:\n%s", tailLines(out, 20))
	}
	tps, _ = strconv.ParseFloat(m[1], 64)
	if m := sbLat95.FindStringSubmatch(out); m != nil {
		lat95, _ = strconv.ParseFloat(m[1], 64)
	}
	return tps, lat95, nil
}
