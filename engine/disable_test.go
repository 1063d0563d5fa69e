package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/hardening/guard"
	"github.com/mysecure/mysecure/internal/hint"
)

// binlogEvent is a binary log event header of the given type and total
// size, followed by zeros.
func binlogEvent(typ byte, size uint32) []byte {
	b := make([]byte, size)
	b[4] = typ
	binary.LittleEndian.PutUint32(b[9:], size)
	return b
}

func TestBinlogEncrypted(t *testing.T) {
	fde := binlogEvent(binlogFormatDescription, 256)
	for name, tc := range map[string]struct {
		in   []byte
		want bool
		err  bool
	}{
		"encrypted":     {in: slices.Concat(binlogMagic, fde, binlogEvent(binlogStartEncryption, 40), []byte("garbage")), want: true},
		"plaintext":     {in: slices.Concat(binlogMagic, fde, binlogEvent(163, 31))},
		"only the FDE":  {in: slices.Concat(binlogMagic, fde)},
		"not a binlog":  {in: []byte("hello world, not a binary log at all"), err: true},
		"truncated FDE": {in: slices.Concat(binlogMagic, fde[:100]), err: true},
		"empty":         {in: nil, err: true},
		"tiny FDE size": {in: slices.Concat(binlogMagic, binlogEvent(binlogFormatDescription, 19)[:19]), err: false},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := BinlogEncrypted(bytes.NewReader(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("got %v, %v; want %v (error %v)", got, err, tc.want, tc.err)
			}
			if err != nil && !errors.Is(err, ErrNotBinlog) {
				t.Fatalf("error %v is not ErrNotBinlog", err)
			}
		})
	}
	// A symlink is not followed.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real"), slices.Concat(binlogMagic, fde), 0o600)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link"))
	if _, err := BinlogFileEncrypted(filepath.Join(dir, "link")); err == nil {
		t.Fatal("followed a symlink")
	}
}

func FuzzBinlogEncrypted(f *testing.F) {
	f.Add(slices.Concat(binlogMagic, binlogEvent(binlogFormatDescription, 256), binlogEvent(binlogStartEncryption, 40)))
	f.Add([]byte("\xfebin"))
	f.Fuzz(func(t *testing.T, b []byte) {
		enc, err := BinlogEncrypted(bytes.NewReader(b))
		if err != nil && enc {
			t.Fatal("encrypted and an error")
		}
		if err == nil && !bytes.HasPrefix(b, binlogMagic) {
			t.Fatal("accepted a file without the magic")
		}
	})
}

func testOptions(t *testing.T) Options {
	t.Helper()
	o := Options{Binary: "/usr/sbin/mariadbd", CnfDir: t.TempDir(), Mount: "/var/lib/mysecure/encrypted"}
	if err := o.Fill(); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPhases: the decrypting option file keeps the key plugin (with
// FORCE_PLUS_PERMANENT) and turns every encryption off; the guard pins
// follow the phase and drop everything when off.
func TestPhases(t *testing.T) {
	o := testOptions(t)
	dec := o.PhaseConfig(Decrypting)
	for _, want := range []string{Marker, "plugin_load_add = file_key_management", "file_key_management = FORCE_PLUS_PERMANENT",
		"file_key_management_filename = " + o.KeyInMount(), "innodb_encrypt_tables = OFF", "innodb_encrypt_log = OFF",
		"encrypt_binlog = OFF", "aria_encrypt_tables = OFF", "encrypt_tmp_files = OFF", "innodb_encrypt_temporary_tables = OFF"} {
		if !strings.Contains(dec, want) {
			t.Errorf("decrypting config lacks %q:\n%s", want, dec)
		}
	}
	if strings.Contains(dec, "= ON") || strings.Contains(dec, "FORCE\n") || dec == o.ServerConfig() || o.PhaseConfig(Off) != "" {
		t.Fatalf("phases:\n%s", dec)
	}
	pins := &guard.Pins{PluginLoad: []string{"auth_ed25519"}}
	o.SetGuardPhase(pins, Encrypting)
	o.SetGuardPhase(pins, Encrypting) // idempotent
	if !slices.Equal(pins.PluginLoad, []string{"auth_ed25519", KeyPlugin}) || !slices.Equal(pins.RequirePlugins, []string{KeyPlugin}) {
		t.Fatalf("plugins: %+v", pins)
	}
	vals := map[string]string{}
	for _, v := range pins.Values {
		vals[v.Option] = v.Value
	}
	if vals["innodb-encrypt-tables"] != "FORCE" || vals["file-key-management"] != "FORCE_PLUS_PERMANENT" || vals["file-key-management-filename"] != o.KeyInMount() ||
		vals["encrypt-binlog"] != "ON" || len(vals) != 10 {
		t.Fatalf("pins: %v", vals)
	}
	for name := range vals {
		if !slices.Contains(guard.ValueOptions(), name) {
			t.Errorf("the guard cannot pin %s", name)
		}
	}
	o.SetGuardPhase(pins, Decrypting)
	if pins.Values[3].Option != "innodb-encrypt-tables" || pins.Values[3].Value != "OFF" || !slices.Contains(pins.RequirePlugins, KeyPlugin) {
		t.Fatalf("decrypting pins: %+v", pins)
	}
	o.SetGuardPhase(pins, Off)
	if !slices.Equal(pins.PluginLoad, []string{"auth_ed25519"}) || len(pins.RequirePlugins) != 0 || pins.Values != nil {
		t.Fatalf("off: %+v", pins)
	}
}

// TestDisableStage: the option file says which run comes next; a changed
// or foreign one is refused, and MySQL is not supported.
func TestDisableStage(t *testing.T) {
	o := testOptions(t)
	d := &Disable{Setup: &Setup{Opts: o}}
	stage := func() (Stage, error) { return d.Stage() }
	if st, err := stage(); err != nil || st != StageOff {
		t.Fatalf("no file: %v %v", st, err)
	}
	os.WriteFile(o.CnfPath(), []byte(o.ServerConfig()), 0o644)
	if st, err := stage(); err != nil || st != StageDecrypt {
		t.Fatalf("enabled: %v %v", st, err)
	}
	os.WriteFile(o.CnfPath(), []byte(o.PhaseConfig(Decrypting)), 0o644)
	if st, err := stage(); err != nil || st != StageFinish {
		t.Fatalf("decrypting: %v %v", st, err)
	}
	var r *Refusal
	os.WriteFile(o.CnfPath(), []byte(o.ServerConfig()+"innodb_encrypt_tables = OFF\n"), 0o644)
	if _, err := stage(); !errors.As(err, &r) || !errors.Is(err, inplace.ErrRefused) || err.Error() != o.CnfPath()+" was changed since engine mode wrote it" {
		t.Fatalf("edited: %v", err)
	} else if h, _ := hint.Of(err); !strings.Contains(h, "engine enable") {
		t.Fatalf("edited: hint %q", h)
	}
	os.WriteFile(o.CnfPath(), []byte("[mariadb]\n"), 0o644)
	if _, err := stage(); !errors.Is(err, ErrForeignFile) {
		t.Fatalf("foreign: %v", err)
	}
	d.Setup.Opts.Flavor = MySQL
	if _, err := stage(); !errors.As(err, &r) {
		t.Fatalf("mysql: %v", err)
	}
}

// TestCnfSwapStep: apply, check, undo; a file changed in between is
// left alone.
func TestCnfSwapStep(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t)
	p := o.CnfPath()
	enc, dec := o.PhaseConfig(Encrypting), o.PhaseConfig(Decrypting)
	os.WriteFile(p, []byte(enc), 0o644)
	swap := &CnfSwapStep{Path: p, From: enc, To: dec, Phase: Decrypting}
	if done, _, err := swap.Check(ctx); done || err != nil {
		t.Fatalf("check before: %v %v", done, err)
	}
	if err := swap.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != dec {
		t.Fatal("not swapped")
	}
	if done, _, err := swap.Check(ctx); !done || err != nil {
		t.Fatalf("check after: %v %v", done, err)
	}
	off := &CnfSwapStep{Path: p, From: dec, Phase: Off}
	if err := off.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := off.Check(ctx); !done {
		t.Fatal("removed file not done")
	}
	if err := off.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := swap.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != enc {
		t.Fatal("undo did not restore the encrypting file")
	}
	os.WriteFile(p, []byte(enc+"# edited\n"), 0o644)
	if err := swap.Apply(ctx); err == nil {
		t.Fatal("swapped a file changed in between")
	}
	if b, _ := os.ReadFile(p); !strings.HasSuffix(string(b), "# edited\n") {
		t.Fatal("the changed file was touched")
	}
}

func TestSameSettingAndQuote(t *testing.T) {
	for _, c := range [][2]string{{"0", "OFF"}, {"1", "on"}, {"FORCE", "force"}} {
		if !sameSetting(c[0], c[1]) {
			t.Errorf("%q != %q", c[0], c[1])
		}
	}
	if sameSetting("ON", "FORCE") || sameSetting("0", "1") {
		t.Error("different values equal")
	}
	if q := quoteIdent("a`b"); q != "`a``b`" {
		t.Errorf("quote: %s", q)
	}
}
