package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mysecure/mysecure/internal/plan"
)

// ariaHeader builds the start of a .MAI file as MariaDB 10.11 writes it:
// the magic, the base info at 0xd7 (as in the index files of tables with
// one VARCHAR column) and extra_options in the base info.
func ariaHeader(extraOptions uint16) []byte {
	h := make([]byte, 1024)
	copy(h, []byte{0xfe, 0xfe, 0x09, 0x03})
	const base = 0xd7
	h[12], h[13] = 0, base
	h[base+90], h[base+91] = byte(extraOptions>>8), byte(extraOptions)
	return h
}

// TestAriaHeaderEncrypted: bit 0 of extra_options is the encryption
// (observed on 10.11: a table created with aria_encrypt_tables=ON has
// 0001, one created before it 0000); other bits do not count; what is not
// an Aria header is refused.
func TestAriaHeaderEncrypted(t *testing.T) {
	for _, c := range []struct {
		name string
		h    []byte
		want bool
		err  bool
	}{
		{"encrypted", ariaHeader(1), true, false},
		{"plaintext", ariaHeader(0), false, false},
		{"insert order only", ariaHeader(2), false, false},
		{"encrypted and insert order", ariaHeader(3), true, false},
		{"not aria", append([]byte{0xfe, 0xfe, 0x07, 0x01}, make([]byte, 400)...), false, true},
		{"short", []byte{0xfe, 0xfe, 0x09}, false, true},
		{"base outside", ariaHeader(1)[:0xd7+91], false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := AriaHeaderEncrypted(c.h)
			if (err != nil) != c.err || got != c.want {
				t.Fatalf("got %v %v, want %v (error %v)", got, err, c.want, c.err)
			}
			if err != nil && !errors.Is(err, ErrNotAria) {
				t.Fatalf("error %v is not ErrNotAria", err)
			}
		})
	}
}

func FuzzAriaHeader(f *testing.F) {
	f.Add(ariaHeader(1))
	f.Add(ariaHeader(0))
	f.Add([]byte{0xfe, 0xfe, 0x09, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, h []byte) {
		enc, err := AriaHeaderEncrypted(h)
		if err != nil && enc {
			t.Fatal("encrypted with an error")
		}
		if err == nil {
			base := int(h[12])<<8 | int(h[13])
			if base+92 > len(h) || enc != (h[base+91]&1 == 1) {
				t.Fatalf("base %d, len %d, enc %v", base, len(h), enc)
			}
		}
	})
}

// TestAriaIndexFiles: a table's .MAI file by MariaDB's file name of its
// names, a partitioned table's files, a missing table.
func TestAriaIndexFiles(t *testing.T) {
	dd := t.TempDir()
	for _, p := range []string{"shop/a.MAI", "my@002ddb/t@0020x.MAI", "shop/p#P#p0.MAI", "shop/p#P#p1.MAI", "shop/pp.MAI"} {
		os.MkdirAll(filepath.Join(dd, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dd, p), ariaHeader(1), 0o644)
	}
	for _, c := range []struct {
		schema, table string
		want          []string
	}{
		{"shop", "a", []string{"shop/a.MAI"}},
		{"my-db", "t x", []string{"my@002ddb/t@0020x.MAI"}},
		{"shop", "p", []string{"shop/p#P#p0.MAI", "shop/p#P#p1.MAI"}},
	} {
		got, err := ariaIndexFiles(dd, c.schema, c.table)
		var want []string
		for _, w := range c.want {
			want = append(want, filepath.Join(dd, w))
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s.%s: %v %v, want %v", c.schema, c.table, got, err, want)
		}
	}
	if _, err := ariaIndexFiles(dd, "shop", "missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing table: %v", err)
	}
	if enc, err := AriaFileEncrypted(filepath.Join(dd, "shop", "a.MAI")); err != nil || !enc {
		t.Errorf("file: %v %v", enc, err)
	}
	os.Symlink(filepath.Join(dd, "shop", "a.MAI"), filepath.Join(dd, "shop", "l.MAI"))
	if _, err := AriaFileEncrypted(filepath.Join(dd, "shop", "l.MAI")); err == nil {
		t.Error("followed a symlink")
	}
}

func TestAriaTableEncryptable(t *testing.T) {
	for rf, want := range map[string]bool{"Page": true, "PAGE": true, "": true, "Fixed": false, "Dynamic": false} {
		if got := (AriaTable{RowFormat: rf}).Encryptable(); got != want {
			t.Errorf("%q: %v", rf, got)
		}
	}
	a := &AriaRebuildStep{Encrypt: true}
	d := &AriaRebuildStep{}
	if a.ID() == d.ID() || d.ID() != "engine:aria-rebuild" {
		t.Errorf("ids %q %q", a.ID(), d.ID())
	}
	if err := a.Undo(context.Background()); err != nil {
		t.Errorf("the encrypting rebuild's undo: %v", err)
	}
}

// TestRecordedBackupTool: what enable recorded (none included) is what
// status and later runs plan, also after a disable run carried it on; no
// record leaves the options as they are.
func TestRecordedBackupTool(t *testing.T) {
	o := testOptions(t)
	o.StatePath = filepath.Join(t.TempDir(), "engine.json")
	o.BackupTool = "/usr/bin/mariadb-backup"
	if ok, err := o.UseRecorded(); ok || err != nil || o.BackupTool != "/usr/bin/mariadb-backup" {
		t.Fatalf("no state: %v %v %q", ok, err, o.BackupTool)
	}
	enabled := o
	enabled.BackupTool = ""
	r := &plan.Runner{StatePath: o.StatePath, Params: enabled.Params()}
	if _, err := r.Apply(context.Background(), "engine", nil); err != nil {
		t.Fatal(err)
	}
	status := o
	if ok, err := status.UseRecorded(); !ok || err != nil || status.BackupTool != "" {
		t.Fatalf("recorded none: %v %v %q", ok, err, status.BackupTool)
	}
	if rules := (&Setup{Opts: status}).Rules(); len(rules) != 1 {
		t.Fatalf("rules with none recorded: %v", rules)
	}
	// A disable run keeps the record.
	params, err := o.RecordedParams()
	if err != nil {
		t.Fatal(err)
	}
	r = &plan.Runner{StatePath: o.StatePath, Params: params}
	if _, err := r.Apply(context.Background(), "engine-disable", nil); err != nil {
		t.Fatal(err)
	}
	status = o
	if ok, err := status.UseRecorded(); !ok || err != nil || status.BackupTool != "" {
		t.Fatalf("after disable: %v %v %q", ok, err, status.BackupTool)
	}
	// A run that recorded the tool.
	r = &plan.Runner{StatePath: o.StatePath, Params: o.Params()}
	r.Apply(context.Background(), "engine", nil)
	status = o
	status.BackupTool = ""
	if ok, _ := status.UseRecorded(); !ok || status.BackupTool != "/usr/bin/mariadb-backup" || len((&Setup{Opts: status}).Rules()) != 2 {
		t.Fatalf("recorded tool: %v %q", ok, status.BackupTool)
	}
}
