package xbstream

import (
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// FuzzObserver feeds arbitrary bytes, cut in two at an arbitrary place: the
// Observer must not panic, must keep its memory bounded (header buffer,
// open files, captures) and must reach the same verdict however the bytes
// are cut.
func FuzzObserver(f *testing.F) {
	f.Add(handBuilt(), uint16(7))
	f.Add((&builder{}).payload("f", 0, "data").eof("f").Bytes(), uint16(20))
	f.Add((&builder{}).sparse("s", 0, [][2]uint32{{2, 1}, {0, 1}}, "ab").eof("s").Bytes(), uint16(30))
	ign := &builder{}
	ign.raw(flagIgnorable, 0, "x", 0, []byte("zz"), crc32.ChecksumIEEE([]byte("zz")))
	f.Add(ign.Bytes(), uint16(3))
	f.Add([]byte("XBSTCK01\x00P\xff\xff\xff\xff"), uint16(9))
	f.Add([]byte{}, uint16(0))

	const maxCapture = 16
	capture := []string{"f", "s", "xtrabackup_binlog_info", "big"}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		run := func(pieces ...[]byte) (*Observer, string, []File) {
			var files []File
			o := New(Options{MaxCapture: maxCapture, Capture: capture, OnFile: func(fl File) { files = append(files, fl) }})
			hdrCap := cap(o.hdr)
			for _, p := range pieces {
				if n, err := o.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if cap(o.hdr) != hdrCap || len(o.hdr) > hdrCap {
					t.Fatalf("header buffer grew to %d (cap %d)", len(o.hdr), cap(o.hdr))
				}
				if len(o.open) > MaxOpenFiles || len(o.done) > MaxTrackedFiles {
					t.Fatalf("%d open files, %d tracked", len(o.open), len(o.done))
				}
			}
			return o, errString(o.Close()), files
		}
		c := int(cut) % (len(data) + 1)
		o1, err1, files1 := run(data)
		o2, err2, files2 := run(data[:c], data[c:])
		if err1 != err2 || !reflect.DeepEqual(files1, files2) {
			t.Fatalf("cut at %d changes the verdict: %q %v vs %q %v", c, err1, files1, err2, files2)
		}
		s1, s2 := o1.Stats(), o2.Stats()
		if s1.Bytes != int64(len(data)) || s2.Bytes != int64(len(data)) || s1.Parsed > s1.Bytes {
			t.Fatalf("stats %+v for %d bytes", s1, len(data))
		}
		if s1.Chunks != s2.Chunks || s1.Files != s2.Files || s1.PayloadBytes != s2.PayloadBytes {
			t.Fatalf("stats differ: %+v vs %+v", s1, s2)
		}
		if err1 == "" && (s1.OpenFiles != 0 || s1.Files == 0 || s1.Parsed != s1.Bytes) {
			t.Fatalf("accepted stream with stats %+v", s1)
		}
		for _, name := range capture {
			b, ok := o1.Captured(name)
			if len(b) > maxCapture {
				t.Fatalf("captured %d bytes of %s", len(b), name)
			}
			b2, ok2 := o2.Captured(name)
			if string(b) != string(b2) || ok != ok2 {
				t.Fatalf("capture of %s differs: %q %v vs %q %v", name, b, ok, b2, ok2)
			}
		}
	})
}

// FuzzParseBinlogInfo: xtrabackup_binlog_info from a tool's stream parses
// or is refused, never panics; a parsed file name holds no tab or newline.
func FuzzParseBinlogInfo(f *testing.F) {
	for _, s := range []string{"mysql-bin.000001\t1505\t0-1-7\n", "binlog.000002\t157\t3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n4E11FA47-71CA-11E1-9E33-C80AA9429562:1-3\n", "x\t-1", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, _, _, err := ParseBinlogInfo(b)
		if err == nil && strings.ContainsAny(file, "\t\n") {
			t.Fatalf("file %q", file)
		}
	})
}
