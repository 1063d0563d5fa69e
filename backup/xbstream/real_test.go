package xbstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// realBackup is a mariabackup stream of a private server, with the
// Observer that watched it pass, the files it reported, the server's binary
// log coordinates and a scratch directory.
type realBackup struct {
	stream  []byte
	obs     *Observer
	files   []File
	binlog  string // SHOW MASTER STATUS file
	pos     uint64
	gtid    string // @@gtid_binlog_pos
	scratch string
}

var captureNames = []string{BinlogInfoFile, "xtrabackup_checkpoints", "xtrabackup_info", "backup-my.cnf"}

// makeRealBackup starts a private MariaDB server (binary log on), fills it
// and backs it up with `mariabackup --stream=xbstream`; the server is
// stopped when the test ends.
func makeRealBackup(t *testing.T) *realBackup {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mariabackup", "mbstream", "mariadbd", "mariadb-install-db", "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)

	dir := t.TempDir()
	// The server runs as mysql: let it through t.TempDir's parents.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := sandbox.Options{Dir: filepath.Join(dir, "server"), Args: []string{"--log-bin=mysql-bin", "--server-id=1"}}
	if err := sandbox.Init(ctx, opts); err != nil {
		t.Fatal(err)
	}
	srv, err := sandbox.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
	})

	// Enough data for files of several chunks (10 MiB each), in the three
	// engines mariabackup copies differently.
	setup := `
CREATE DATABASE shop;
USE shop;
CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(2000)) ENGINE=InnoDB;
INSERT INTO shop.orders SELECT seq, REPEAT(CHAR(65 + seq % 26), 1500) FROM seq_1_to_16000;
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(100)) ENGINE=MyISAM;
INSERT INTO shop.customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_2000;
CREATE TABLE shop.audit (id INT PRIMARY KEY, what TEXT) ENGINE=Aria;
INSERT INTO shop.audit SELECT seq, REPEAT('audit ', seq % 50) FROM seq_1_to_3000;
CREATE TABLE shop.empty (id INT) ENGINE=InnoDB;
`
	if out, err := srv.Client(ctx, setup); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	st, err := srv.Client(ctx, "SHOW MASTER STATUS; SELECT @@gtid_binlog_pos;")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(st), "\n")
	if len(lines) != 2 {
		t.Fatalf("unexpected SHOW MASTER STATUS output %q", st)
	}
	f := strings.Split(lines[0], "\t")
	rb := &realBackup{binlog: f[0], gtid: strings.TrimSpace(lines[1]), scratch: dir}
	if rb.pos, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %q", st)
	}

	rb.obs = New(Options{MaxCapture: 64 << 10, Capture: captureNames, Require: []string{"xtrabackup_info"},
		OnFile: func(f File) { rb.files = append(rb.files, f) }})
	var stream, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "mariabackup", "--no-defaults", "--backup", "--stream=xbstream", "--parallel=2",
		"--socket="+srv.Socket, "--user=root", "--target-dir="+filepath.Join(dir, "target"))
	cmd.Stdout = io.MultiWriter(rb.obs, &stream)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariabackup: %v\n%s", err, stderr.String())
	}
	rb.stream = stream.Bytes()
	return rb
}

// extract runs mbstream -x on s into a new directory and returns it, with
// mbstream's error (nil if it exited 0).
func extract(t *testing.T, scratch string, s []byte) (string, error) {
	t.Helper()
	out, err := os.MkdirTemp(scratch, "extract")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mbstream", "-x", "-C", out)
	cmd.Stdin = bytes.NewReader(s)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		err = errors.New(err.Error() + ": " + string(msg))
	}
	return out, err
}

func TestRealBackupStream(t *testing.T) {
	rb := makeRealBackup(t)
	o := rb.obs
	if err := o.Close(); err != nil {
		t.Fatalf("Close() on a real stream = %v", err)
	}

	// The files the Observer reported are exactly those mbstream extracts.
	dir, err := extract(t, rb.scratch, rb.stream)
	if err != nil {
		t.Fatalf("mbstream: %v", err)
	}
	onDisk := map[string]int64{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		onDisk[filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	var total, multi int64
	for _, f := range rb.files {
		seen[f.Path] = f.Size
		total += f.Size
		if f.Chunks > 1 {
			multi++
		}
	}
	if len(seen) != len(rb.files) {
		t.Fatalf("a path was reported twice")
	}
	if !reflect.DeepEqual(seen, onDisk) {
		for p, n := range onDisk {
			if m, ok := seen[p]; !ok || m != n {
				t.Errorf("mbstream wrote %s (%d bytes); observer: %d bytes, reported %v", p, n, m, ok)
			}
		}
		for p := range seen {
			if _, ok := onDisk[p]; !ok {
				t.Errorf("observer reported %s, mbstream did not write it", p)
			}
		}
		t.FailNow()
	}
	for _, p := range []string{"ibdata1", "shop/orders.frm", "shop/customers.MYD", "shop/audit.MAD", "shop/empty.frm", BinlogInfoFile} {
		if _, ok := seen[p]; !ok {
			t.Errorf("%s missing from the stream", p)
		}
	}
	// InnoDB tablespaces created since the last checkpoint are streamed
	// as NAME.new (renamed by --prepare), older ones as NAME.ibd.
	if seen["shop/orders.ibd"]+seen["shop/orders.new"] < 16000*1500 {
		t.Errorf("shop/orders tablespace missing or too small")
	}
	if multi == 0 {
		t.Errorf("no file of several chunks: the test data is too small")
	}
	s := o.Stats()
	if s.Files != int64(len(onDisk)) || s.PayloadBytes != total || s.Bytes != int64(len(rb.stream)) ||
		s.Parsed != s.Bytes || s.OpenFiles != 0 || s.IgnoredChunks != 0 || s.Chunks < s.Files*2-int64(countEmpty(onDisk)) {
		t.Errorf("stats %+v; %d files, %d bytes extracted", s, len(onDisk), total)
	}
	t.Logf("stream of %d bytes: %d chunks, %d files (%d of several chunks), %d payload bytes", len(rb.stream), s.Chunks, s.Files, multi, s.PayloadBytes)

	// Captured files equal mbstream's copies.
	for _, name := range captureNames {
		got, ok := o.Captured(name)
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Errorf("Captured(%s) = %q, %v; mbstream wrote %q (%v)", name, got, ok, want, err)
		}
	}
	info, _ := o.Captured(BinlogInfoFile)
	t.Logf("xtrabackup_binlog_info: %q", info)
	file, pos, gtid, err := ParseBinlogInfo(info)
	if err != nil || file != rb.binlog || pos != rb.pos || gtid != rb.gtid {
		t.Errorf("binlog info %q %d %q (%v); server: %q %d %q", file, pos, gtid, err, rb.binlog, rb.pos, rb.gtid)
	}
	if cp, _ := o.Captured("xtrabackup_checkpoints"); !bytes.Contains(cp, []byte("backup_type = full-backuped")) {
		t.Errorf("xtrabackup_checkpoints: %q", cp)
	}

	// The same stream fed in writes of random sizes gives the same result.
	want := observe(t, rb.stream, Options{MaxCapture: 64 << 10, Capture: captureNames}, whole)
	got := observe(t, rb.stream, Options{MaxCapture: 64 << 10, Capture: captureNames}, randomSplit(rand.New(rand.NewSource(2)), 100<<10))
	if want.err != "" || !reflect.DeepEqual(got, want) {
		t.Errorf("random writes: %+v\nwhole: %+v", got.stats, want.stats)
	}

	t.Run("corruption", func(t *testing.T) { testCorruption(t, rb) })
}

func countEmpty(m map[string]int64) int {
	n := 0
	for _, size := range m {
		if size == 0 {
			n++
		}
	}
	return n
}

// testCorruption damages the real stream in various ways: each must make
// Close fail.
func testCorruption(t *testing.T, rb *realBackup) {
	s := rb.stream
	chunks := walk(t, s)
	last := chunks[len(chunks)-1]
	if last.typ != 'E' || last.path != "xtrabackup_info" {
		t.Fatalf("stream ends with %c %s, expected the EOF chunk of xtrabackup_info", last.typ, last.path)
	}
	// The largest payload chunk, and the first payload chunk.
	var big, first chunkPos
	for _, c := range chunks {
		if c.typ == 'P' && c.length > big.length {
			big = c
		}
		if c.typ == 'P' && first.typ == 0 {
			first = c
		}
	}
	// The last payload chunk before the final EOF: xtrabackup_info's.
	infoData := chunks[len(chunks)-2]
	if infoData.typ != 'P' || infoData.path != "xtrabackup_info" {
		t.Fatalf("unexpected chunk before the last: %c %s", infoData.typ, infoData.path)
	}
	flip := func(at int, to byte) []byte {
		b := bytes.Clone(s)
		if to == 0 {
			b[at] ^= 0x20
		} else {
			b[at] = to
		}
		return b
	}
	cases := []struct {
		name string
		s    []byte
		opts Options
		kind error // nil: any error
	}{
		{"payload byte", flip(big.payload+big.length/2, 0), Options{}, ErrChecksum},
		{"first payload byte", flip(first.payload, 0), Options{}, ErrChecksum},
		{"last payload byte", flip(infoData.end-1, 0), Options{}, ErrChecksum},
		{"stored checksum", flip(big.payload-1, 0), Options{}, ErrChecksum},
		{"magic", flip(big.start+3, 0), Options{}, ErrBadMagic},
		{"chunk type", flip(big.start+9, 'Q'), Options{}, ErrUnknownType},
		{"path length", flip(big.start+13, 1), Options{}, ErrPathLength},
		{"path byte", flip(big.start+14, 'Z'), Options{}, nil},
		{"payload length", flip(big.payload-20, 0), Options{}, nil},
		{"payload length high byte", flip(big.payload-13, 1), Options{}, nil},
		{"payload offset", flip(big.payload-12, 1), Options{}, ErrOutOfOrder},
		{"cut in header", s[:5], Options{}, ErrTruncated},
		{"cut in path", s[:big.start+16], Options{}, nil},
		{"cut in payload header", s[:big.payload-10], Options{}, ErrTruncated},
		{"cut in payload", s[:big.payload+big.length/3], Options{}, ErrTruncated},
		{"cut before the final EOF chunk", s[:last.start], Options{}, ErrMissingEOF},
		{"cut one byte short", s[:len(s)-1], Options{}, ErrTruncated},
		{"cut at a file boundary", s[:infoData.start], Options{Require: []string{"xtrabackup_info"}}, ErrMissingFile},
		{"garbage appended", append(bytes.Clone(s), "this is not a chunk header at all"...), Options{}, ErrBadMagic},
		{"newline appended", append(bytes.Clone(s), '\n'), Options{}, ErrBadMagic},
		{"partial magic appended", append(bytes.Clone(s), "XBSTC"...), Options{}, ErrTruncated},
		{"first chunk appended again", append(bytes.Clone(s), s[first.start:first.end]...), Options{}, ErrDuplicateFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := New(c.opts)
			if n, err := o.Write(c.s); n != len(c.s) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			err := o.Close()
			if err == nil {
				t.Fatalf("Close() = nil on a damaged stream")
			}
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Fatalf("Close() = %v, want %v", err, c.kind)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Close() = %T %v, want *FormatError", err, err)
			}
			t.Logf("%v", err)
		})
	}

	// The checksum error names the chunk that mbstream also rejects.
	damaged := flip(big.payload+big.length/2, 0)
	o := NewObserver(0)
	_, _ = o.Write(damaged)
	var fe *FormatError
	if err := o.Close(); !errors.As(err, &fe) || fe.Offset != int64(big.start) || fe.Path != big.path {
		t.Errorf("checksum error %v, want the chunk of %s at %d", err, big.path, big.start)
	}
	if _, err := extract(t, rb.scratch, damaged); err == nil {
		t.Errorf("mbstream accepted the stream with a flipped payload byte")
	}

	// Without Require, a cut exactly at a file boundary is a well-formed
	// stream: only the missing last file tells (documented limitation).
	o = NewObserver(1024, "xtrabackup_info")
	_, _ = o.Write(s[:infoData.start])
	if err := o.Close(); err != nil {
		t.Errorf("cut at a file boundary without Require: %v", err)
	}
	if _, ok := o.Captured("xtrabackup_info"); ok {
		t.Errorf("xtrabackup_info captured from a stream cut before it")
	}
}
