package xbstream

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// handBuilt is a stream with interleaved files, an empty file, a sparse
// file, an ignorable chunk of unknown type and files to capture.
func handBuilt() []byte {
	b := &builder{}
	b.payload("db/a.ibd", 0, "hello ")
	b.payload("xtrabackup_binlog_info", 0, "mysql-bin.000002\t4242\t0-1-9\n")
	b.payload("db/a.ibd", 6, "world")
	b.raw(flagIgnorable, 'X', "future-extension", 0, []byte("ignore me"), crc32.ChecksumIEEE([]byte("ignore me")))
	b.eof("xtrabackup_binlog_info")
	b.eof("mysql/general_log.CSV") // an empty file: EOF chunk only
	b.sparse("db/s.ibd", 0, [][2]uint32{{0, 3}, {4, 2}}, "abcde")
	b.sparse("db/s.ibd", 9, [][2]uint32{{1, 0}}, "")
	b.payload("db/s.ibd", 10, "Z")
	b.eof("db/a.ibd")
	b.eof("db/s.ibd")
	b.payload("big", 0, "0123456789")
	b.eof("big")
	return b.Bytes()
}

func TestHandBuiltStream(t *testing.T) {
	s := handBuilt()
	opts := Options{
		MaxCapture: 40,
		Capture:    []string{"db/a.ibd", "xtrabackup_binlog_info", "mysql/general_log.CSV", "big", "db/s.ibd", "never"},
		Require:    []string{"big", "db/a.ibd"},
	}
	want := result{
		stats: Stats{Bytes: int64(len(s)), Parsed: int64(len(s)), Chunks: 13, Files: 5, PayloadBytes: 6 + 28 + 5 + 5 + 0 + 1 + 10, IgnoredChunks: 1},
		files: []File{
			{Path: "xtrabackup_binlog_info", Size: 28, Chunks: 1},
			{Path: "mysql/general_log.CSV", Size: 0, Chunks: 0},
			{Path: "db/a.ibd", Size: 11, Chunks: 2},
			{Path: "db/s.ibd", Size: 11, Chunks: 3},
			{Path: "big", Size: 10, Chunks: 1},
		},
		captured: map[string]string{
			"db/a.ibd":               "hello world",
			"xtrabackup_binlog_info": "mysql-bin.000002\t4242\t0-1-9\n",
			"mysql/general_log.CSV":  "",
			"big":                    "0123456789",
			"db/s.ibd":               "",
			"never":                  "",
		},
		ok: map[string]bool{"db/a.ibd": true, "xtrabackup_binlog_info": true, "mysql/general_log.CSV": true, "big": true,
			"db/s.ibd": false, "never": false},
	}
	got := observe(t, s, opts, whole)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("whole stream:\ngot  %+v\nwant %+v", got, want)
	}

	// A smaller capture limit truncates xtrabackup_binlog_info (28 bytes)
	// but keeps a.ibd (11 bytes: the limit is inclusive) and big (10).
	opts.MaxCapture = 11
	want.captured["big"] = "0123456789"
	want.captured["xtrabackup_binlog_info"] = "mysql-bin.0"
	want.ok["xtrabackup_binlog_info"] = false
	got = observe(t, s, opts, whole)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MaxCapture 11:\ngot  %+v\nwant %+v", got, want)
	}
	o := New(opts)
	_, _ = o.Write(s)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if !o.Truncated("xtrabackup_binlog_info") || o.Truncated("big") || !o.Truncated("db/s.ibd") {
		t.Fatalf("Truncated: binlog %v big %v sparse %v; want true false true",
			o.Truncated("xtrabackup_binlog_info"), o.Truncated("big"), o.Truncated("db/s.ibd"))
	}

	// However the bytes are cut, the result is the same.
	got = observe(t, s, opts, bytewise)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("byte by byte:\ngot  %+v\nwant %+v", got, want)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		got = observe(t, s, opts, randomSplit(rng, 40))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("random split %d:\ngot  %+v\nwant %+v", i, got, want)
		}
	}
}

func TestBinlogCapturedFromHandBuilt(t *testing.T) {
	o := NewObserver(4096, BinlogInfoFile)
	_, _ = o.Write(handBuilt())
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	b, ok := o.Captured(BinlogInfoFile)
	if !ok {
		t.Fatal("binlog info not captured")
	}
	file, pos, gtid, err := ParseBinlogInfo(b)
	if err != nil || file != "mysql-bin.000002" || pos != 4242 || gtid != "0-1-9" {
		t.Fatalf("ParseBinlogInfo = %q %d %q %v", file, pos, gtid, err)
	}
}

func TestFormatErrors(t *testing.T) {
	good := func() *builder { return (&builder{}).payload("f", 0, "data").eof("f") }
	badSum := &builder{}
	badSum.raw(0, 'P', "f", 0, []byte("data"), crc32.ChecksumIEEE([]byte("datA")))
	badSum.eof("f")
	longPath := &builder{}
	longPath.head(0, 'E', strings.Repeat("p", 512))
	okLongPath := &builder{}
	okLongPath.head(0, 'E', strings.Repeat("p", 511))
	unknown := &builder{}
	unknown.raw(0, 'X', "f", 0, nil, 0)
	hugeLen := &builder{}
	hugeLen.head(0, 'P', "f")
	hugeLen.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	hugeOff := &builder{}
	hugeOff.head(0, 'P', "f")
	hugeOff.Write([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
	truncMap := &builder{}
	truncMap.sparse("f", 0, [][2]uint32{{0, 2}}, "ab")
	truncMapBytes := truncMap.Bytes()[:truncMap.Len()-5]

	cases := []struct {
		name  string
		s     []byte
		opts  Options
		kind  error
		chunk int64
		path  string
	}{
		{"good", good().Bytes(), Options{}, nil, 0, ""},
		{"511-byte path", okLongPath.Bytes(), Options{}, nil, 0, ""},
		{"empty", nil, Options{}, ErrEmpty, 1, ""},
		{"bad magic", []byte("XBSTCK02" + strings.Repeat("\x00", 20)), Options{}, ErrBadMagic, 1, ""},
		{"garbage after", append(good().Bytes(), "garbage that is long enough"...), Options{}, ErrBadMagic, 3, ""},
		{"short garbage after", append(good().Bytes(), "XBS"...), Options{}, ErrTruncated, 3, ""},
		{"unknown type", unknown.Bytes(), Options{}, ErrUnknownType, 1, ""},
		{"empty path", (&builder{}).eof("").Bytes(), Options{}, ErrPathLength, 1, ""},
		{"512-byte path", longPath.Bytes(), Options{}, ErrPathLength, 1, ""},
		{"absolute path", (&builder{}).eof("/etc/passwd").Bytes(), Options{}, ErrBadPath, 1, "/etc/passwd"},
		{"dotdot path", (&builder{}).eof("a/../../x").Bytes(), Options{}, ErrBadPath, 1, "a/../../x"},
		{"NUL in path", (&builder{}).eof("a\x00b").Bytes(), Options{}, ErrBadPath, 1, "a\x00b"},
		{"dot path", (&builder{}).eof(".").Bytes(), Options{}, ErrBadPath, 1, "."},
		{"directory path", (&builder{}).eof("dir/").Bytes(), Options{}, ErrBadPath, 1, "dir/"},
		{"checksum", badSum.Bytes(), Options{}, ErrChecksum, 1, "f"},
		{"gap", (&builder{}).payload("f", 0, "ab").payload("f", 3, "c").eof("f").Bytes(), Options{}, ErrOutOfOrder, 2, "f"},
		{"overlap", (&builder{}).payload("f", 0, "ab").payload("f", 1, "c").eof("f").Bytes(), Options{}, ErrOutOfOrder, 2, "f"},
		{"first chunk not at 0", (&builder{}).payload("f", 5, "ab").eof("f").Bytes(), Options{}, ErrOutOfOrder, 1, "f"},
		{"data after EOF", good().payload("f", 4, "more").eof("f").Bytes(), Options{}, ErrDuplicateFile, 3, "f"},
		{"second EOF", good().eof("f").Bytes(), Options{}, ErrDuplicateFile, 3, "f"},
		{"missing EOF", (&builder{}).payload("f", 0, "x").payload("g", 0, "y").eof("g").Bytes(), Options{}, ErrMissingEOF, 4, "f"},
		{"huge length", hugeLen.Bytes(), Options{}, ErrBadLength, 1, "f"},
		{"offset overflow", hugeOff.Bytes(), Options{}, ErrBadLength, 1, "f"},
		{"sparse map too short", (&builder{}).sparse("f", 0, [][2]uint32{{0, 2}}, "abc").eof("f").Bytes(), Options{}, ErrBadLength, 1, "f"},
		{"sparse map too long", (&builder{}).sparse("f", 0, [][2]uint32{{0, 2}, {1, 2}}, "abc").eof("f").Bytes(), Options{}, ErrBadLength, 1, "f"},
		{"cut in header", good().Bytes()[:5], Options{}, ErrTruncated, 1, ""},
		{"cut in path", good().Bytes()[:14], Options{}, ErrTruncated, 1, ""},
		{"cut in payload header", good().Bytes()[:20], Options{}, ErrTruncated, 1, "f"},
		{"cut in payload", good().Bytes()[:36], Options{}, ErrTruncated, 1, "f"},
		{"cut before EOF", good().Bytes()[:39], Options{}, ErrMissingEOF, 2, "f"},
		{"cut in sparse map", truncMapBytes, Options{}, ErrTruncated, 1, "f"},
		{"required missing", good().Bytes(), Options{Require: []string{"xtrabackup_info", "f"}}, ErrMissingFile, 3, "xtrabackup_info"},
		{"required present", good().Bytes(), Options{Require: []string{"f"}}, nil, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, split := range []func(int) int{whole, bytewise} {
				r := observe(t, c.s, c.opts, split)
				o := New(c.opts)
				_, _ = o.Write(c.s)
				err := o.Close()
				if r.err != errString(err) {
					t.Fatalf("whole and split runs differ: %q vs %q", errString(err), r.err)
				}
				if c.kind == nil {
					if err != nil {
						t.Fatalf("Close() = %v, want nil", err)
					}
					continue
				}
				if !errors.Is(err, c.kind) {
					t.Fatalf("Close() = %v, want %v", err, c.kind)
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("Close() = %T, want *FormatError", err)
				}
				if fe.Chunk != c.chunk || fe.Path != c.path {
					t.Fatalf("error at chunk %d path %q, want chunk %d path %q (%v)", fe.Chunk, fe.Path, c.chunk, c.path, err)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestErrorContext(t *testing.T) {
	b := (&builder{}).payload("a", 0, "first").eof("a")
	start := b.Len()
	b.raw(0, 'P', "db/t.ibd", 0, []byte("payload"), 0xdeadbeef)
	o := NewObserver(0)
	_, _ = o.Write(b.Bytes())
	err := o.Err()
	if err == nil {
		t.Fatal("no error before Close")
	}
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Offset != int64(start) || fe.Chunk != 3 || fe.Path != "db/t.ibd" {
		t.Fatalf("error %#v, want chunk 3 at %d", err, start)
	}
	msg := err.Error()
	for _, part := range []string{"checksum mismatch", "stored 0xdeadbeef", "chunk 3", fmt.Sprintf("byte offset %d", start), `"db/t.ibd"`} {
		if !strings.Contains(msg, part) {
			t.Errorf("%q lacks %q", msg, part)
		}
	}
	// Data after the error is ignored, Write still succeeds, and Close
	// reports the first error.
	n, werr := o.Write([]byte("whatever follows"))
	if n != 16 || werr != nil {
		t.Fatalf("Write after error = %d, %v", n, werr)
	}
	if cerr := o.Close(); cerr != err {
		t.Fatalf("Close() = %v, want the first error %v", cerr, err)
	}
	if s := o.Stats(); s.Bytes != int64(b.Len()+16) || s.Parsed != int64(b.Len()) || s.Chunks != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWriteAfterClose(t *testing.T) {
	o := NewObserver(0)
	_, _ = o.Write((&builder{}).eof("f").Bytes())
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Write([]byte("x")); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !errors.Is(o.Err(), ErrWriteAfterClose) || !errors.Is(o.Close(), ErrWriteAfterClose) {
		t.Fatalf("Err() = %v", o.Err())
	}
}

func TestTooManyOpenFiles(t *testing.T) {
	b := &builder{}
	for i := 0; i <= MaxOpenFiles; i++ {
		b.payload(fmt.Sprintf("f%d", i), 0, "x")
	}
	o := NewObserver(0)
	_, _ = o.Write(b.Bytes())
	if !errors.Is(o.Err(), ErrTooManyOpenFiles) {
		t.Fatalf("Err() = %v", o.Err())
	}
	if s := o.Stats(); s.OpenFiles != MaxOpenFiles {
		t.Fatalf("OpenFiles = %d", s.OpenFiles)
	}
	// Completed files do not count.
	b.Reset()
	for i := 0; i <= MaxOpenFiles; i++ {
		b.payload(fmt.Sprintf("f%d", i), 0, "x").eof(fmt.Sprintf("f%d", i))
	}
	o = NewObserver(0)
	_, _ = o.Write(b.Bytes())
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if s := o.Stats(); s.Files != MaxOpenFiles+1 {
		t.Fatalf("Files = %d", s.Files)
	}
}

func TestCapturedIsACopy(t *testing.T) {
	o := NewObserver(100, "f")
	_, _ = o.Write((&builder{}).payload("f", 0, "abc").eof("f").Bytes())
	b, _ := o.Captured("f")
	b[0] = 'X'
	if again, ok := o.Captured("f"); !ok || !bytes.Equal(again, []byte("abc")) {
		t.Fatalf("Captured = %q %v", again, ok)
	}
	if b, ok := o.Captured("not asked"); b != nil || ok {
		t.Fatalf("Captured(not asked) = %q %v", b, ok)
	}
}

func TestParseBinlogInfo(t *testing.T) {
	cases := []struct {
		in        string
		file      string
		pos       uint64
		gtid      string
		wantError bool
	}{
		{"mysql-bin.000001\t1505\t0-1-7\n", "mysql-bin.000001", 1505, "0-1-7", false},
		{"mysql-bin.000001\t1505\n", "mysql-bin.000001", 1505, "", false},
		{"mysql-bin.000001\t1505\t\n", "mysql-bin.000001", 1505, "", false},
		{"mysql-bin.000003\t328\t0-1-7,1-2-30\n", "mysql-bin.000003", 328, "0-1-7,1-2-30", false},
		{"binlog.000002\t197\t3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n6d1e1a1c-71ca-11e1-9e33-c80aa9429562:1-3\n",
			"binlog.000002", 197, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,6d1e1a1c-71ca-11e1-9e33-c80aa9429562:1-3", false},
		{"", "", 0, "", true},
		{"mysql-bin.000001\n", "", 0, "", true},
		{"mysql-bin.000001\tx\t0-1-7\n", "", 0, "", true},
		{"mysql-bin.000001\t-1\n", "", 0, "", true},
		{"mysql-bin.000001\t99999999999999999999\n", "", 0, "", true},
		{"\t1505\t0-1-7\n", "", 0, "", true},
		{"my bin\t1505\n", "", 0, "", true},
		{"mysql-bin.000001\t1505\t0-1-7\textra\n", "", 0, "", true},
	}
	for _, c := range cases {
		file, pos, gtid, err := ParseBinlogInfo([]byte(c.in))
		if c.wantError {
			if err == nil || !errors.Is(err, ErrBinlogInfo) {
				t.Errorf("ParseBinlogInfo(%q) err = %v, want ErrBinlogInfo", c.in, err)
			}
			continue
		}
		if err != nil || file != c.file || pos != c.pos || gtid != c.gtid {
			t.Errorf("ParseBinlogInfo(%q) = %q %d %q %v; want %q %d %q", c.in, file, pos, gtid, err, c.file, c.pos, c.gtid)
		}
	}
}

func BenchmarkObserver(b *testing.B) {
	data := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	s := &builder{}
	for i := 0; i < 64; i++ {
		s.payload("ibdata1", uint64(i*len(data)), data)
	}
	s.eof("ibdata1")
	stream := s.Bytes()
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := NewObserver(0)
		for p := stream; len(p) > 0; p = p[min(len(p), 128<<10):] {
			_, _ = o.Write(p[:min(len(p), 128<<10)])
		}
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
