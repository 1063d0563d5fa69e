package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// An Aria table keeps the encryption it was created with:
// aria_encrypt_tables applies to Aria tables created or rebuilt while it
// is on, and the background threads rewrite InnoDB only. MariaDB 10.11
// shows an Aria table's encryption in no SQL view; its index file does.
// The .MAI file starts with the state header (big-endian): the magic
// fe fe 09, and at byte 12 the offset of the base info, whose
// extra_options (2 bytes at offset 90: after a 16-byte uuid, five 8-byte,
// six 4-byte and five 2-byte fields) has bit 0 set when the table is
// encrypted (MA_EXTRA_OPTIONS_ENCRYPTED; mariabackup reads it the same
// way). The header is never encrypted: it holds what the server needs to
// find the table's key.
const (
	ariaBasePosOffset   = 12
	ariaExtraOptsOffset = 90
	ariaEncryptedBit    = 1
	// ariaHeaderMax bounds the read: the header fits in the first index
	// block (at most 32 KiB).
	ariaHeaderMax = 64 << 10
)

var ariaMagic = []byte{0xfe, 0xfe, 0x09}

// ErrNotAria: the file is not an Aria index file.
var ErrNotAria = errors.New("not an Aria index file")

// AriaHeaderEncrypted reports whether the header of an Aria index file
// (the start of a .MAI file) marks the table encrypted.
func AriaHeaderEncrypted(h []byte) (bool, error) {
	if len(h) < ariaBasePosOffset+2 || string(h[:len(ariaMagic)]) != string(ariaMagic) {
		return false, ErrNotAria
	}
	base := int(h[ariaBasePosOffset])<<8 | int(h[ariaBasePosOffset+1])
	off := base + ariaExtraOptsOffset
	if base < ariaBasePosOffset+2 || off+2 > len(h) {
		return false, fmt.Errorf("%w: base info at %d is outside the header", ErrNotAria, base)
	}
	opts := int(h[off])<<8 | int(h[off+1])
	return opts&ariaEncryptedBit != 0, nil
}

// AriaFileEncrypted reads the header of an Aria index file.
func AriaFileEncrypted(mai string) (bool, error) {
	f, err := os.OpenFile(mai, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h, err := io.ReadAll(io.LimitReader(f, ariaHeaderMax))
	if err != nil {
		return false, err
	}
	return AriaHeaderEncrypted(h)
}

// AriaTable is one Aria table of a running server and whether its files
// are encrypted.
type AriaTable struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	RowFormat string `json:"row_format"`
	Encrypted bool   `json:"encrypted"`
	// Err says why the table's header could not be read (its encryption
	// is then unknown): a datadir on the mount (only the server may open
	// it), a name the file name encoding here does not cover.
	Err string `json:"error,omitempty"`
}

func (t AriaTable) String() string { return t.Schema + "." + t.Name }

// ident is the table's name for SQL.
func (t AriaTable) ident() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

// Encryptable reports whether the engine can encrypt the table: Aria
// encrypts ROW_FORMAT=PAGE tables only.
func (t AriaTable) Encryptable() bool {
	return t.RowFormat == "" || strings.EqualFold(t.RowFormat, "Page")
}

// fileName is MariaDB's file name of a database or table name: letters,
// digits and '_' as they are, any other character as @ and its code in
// four hex digits. (MariaDB writes some non-ASCII letters in a shorter
// form; their files are not found and the table is reported unchecked.)
func fileName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "@%04x", r)
		}
	}
	return b.String()
}

// ariaIndexFiles are the .MAI files of a table: one, or one a partition.
func ariaIndexFiles(datadir, schema, table string) ([]string, error) {
	dir := filepath.Join(datadir, fileName(schema))
	base := fileName(table)
	one := filepath.Join(dir, base+".MAI")
	if _, err := os.Lstat(one); err == nil || !errors.Is(err, os.ErrNotExist) {
		return []string{one}, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, base+"#P#") && strings.HasSuffix(n, ".MAI") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", one, os.ErrNotExist)
	}
	return out, nil
}

// ReadAria lists the Aria tables of the running server and reads each
// one's encryption from its index file(s) in the server's datadir (so it
// runs on the server's host). A table is encrypted when all its files
// are.
func ReadAria(ctx context.Context, c Conn) ([]AriaTable, error) {
	rows, err := c.Query(ctx, "SELECT @@datadir, TABLE_SCHEMA, TABLE_NAME, IFNULL(ROW_FORMAT,'') FROM information_schema.TABLES WHERE ENGINE='Aria' AND TABLE_TYPE='BASE TABLE'"+
		" AND TABLE_SCHEMA NOT IN ('information_schema','performance_schema') ORDER BY 2, 3;")
	if err != nil {
		return nil, err
	}
	var out []AriaTable
	for _, r := range rows {
		if len(r) < 3 {
			continue
		}
		t := AriaTable{Schema: r[1], Name: r[2]}
		if len(r) > 3 {
			t.RowFormat = r[3]
		}
		files, err := ariaIndexFiles(r[0], t.Schema, t.Name)
		t.Encrypted = err == nil
		for _, f := range files {
			enc, ferr := AriaFileEncrypted(f)
			if ferr != nil {
				err = ferr
				break
			}
			t.Encrypted = t.Encrypted && enc
		}
		if err != nil {
			t.Encrypted, t.Err = false, "cannot read its header: "+err.Error()
		}
		out = append(out, t)
	}
	return out, nil
}

// AriaRebuildStep rebuilds, one by one (ALTER TABLE ... FORCE), the Aria
// tables whose files are not as Encrypt says: an Aria table keeps the
// encryption it was created with until it is rebuilt.
//
// Encrypt (engine enable, once the server runs with aria_encrypt_tables
// on): the tables written before engine mode (the mysql.* system tables
// of a datadir initialized before it) are rebuilt encrypted. Tables whose
// encryption cannot be read are left alone (engine status lists them);
// those rebuilt before a failure stay encrypted (a second run goes on
// with the rest), and Undo does nothing: an encrypted Aria table is what
// engine mode wants, and the key plugin stays loaded while it is on.
//
// !Encrypt (engine disable, after aria_encrypt_tables is turned off): the
// encrypted tables, and those whose encryption cannot be read, are
// rebuilt in plaintext (the server cannot open its privilege tables
// without the key plugin otherwise). When one fails, those already
// rebuilt are rebuilt encrypted again; Undo turns aria_encrypt_tables on
// and rebuilds encrypted every table not known to be.
type AriaRebuildStep struct {
	SQL     Conn
	Encrypt bool
}

func (a *AriaRebuildStep) ID() string {
	if a.Encrypt {
		return "engine:aria-encrypt"
	}
	return "engine:aria-rebuild"
}

func (a *AriaRebuildStep) Describe() string {
	if a.Encrypt {
		return "rebuild the Aria tables still in plaintext (ALTER TABLE ... FORCE) encrypted, the mysql.* system tables included"
	}
	return "rebuild every encrypted Aria table (ALTER TABLE ... FORCE) in plaintext, the mysql.* system tables included"
}

// pending lists the tables the step rebuilds.
func (a *AriaRebuildStep) pending(ctx context.Context) ([]AriaTable, error) {
	all, err := ReadAria(ctx, a.SQL)
	if err != nil {
		return nil, err
	}
	var out []AriaTable
	for _, t := range all {
		if a.Encrypt && t.Err == "" && !t.Encrypted && t.Encryptable() ||
			!a.Encrypt && (t.Err != "" || t.Encrypted) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (a *AriaRebuildStep) Check(ctx context.Context) (bool, string, error) {
	p, err := a.pending(ctx)
	if err != nil {
		return false, "", err
	}
	if len(p) == 0 {
		return true, "", nil
	}
	state := "encrypted or unchecked"
	if a.Encrypt {
		state = "in plaintext"
	}
	return false, fmt.Sprintf("%d Aria table(s) %s: %s", len(p), state, ariaNames(p, 5)), nil
}

// ariaNames names up to n tables.
func ariaNames(ts []AriaTable, n int) string {
	var names []string
	for i, t := range ts {
		if i == n {
			names = append(names, fmt.Sprintf("and %d more", len(ts)-n))
			break
		}
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// rebuild rebuilds tables one by one and returns those it rebuilt.
func (a *AriaRebuildStep) rebuild(ctx context.Context, tables []AriaTable) ([]AriaTable, error) {
	var done []AriaTable
	for _, t := range tables {
		if _, err := a.SQL.Query(ctx, "ALTER TABLE "+t.ident()+" FORCE;"); err != nil {
			return done, fmt.Errorf("failed to rebuild the Aria table %s: %w", t.ident(), err)
		}
		done = append(done, t)
	}
	return done, nil
}

// reencrypt turns aria_encrypt_tables on and rebuilds tables encrypted.
func (a *AriaRebuildStep) reencrypt(ctx context.Context, tables []AriaTable) error {
	if _, err := a.SQL.Query(ctx, "SET GLOBAL aria_encrypt_tables = 'ON';"); err != nil {
		return err
	}
	_, err := a.rebuild(ctx, tables)
	return err
}

func (a *AriaRebuildStep) Apply(ctx context.Context) error {
	v, err := a.SQL.variables(ctx, "aria_encrypt_tables")
	if err != nil {
		return err
	}
	if on(v["aria_encrypt_tables"]) != a.Encrypt {
		return fmt.Errorf("the server runs with aria_encrypt_tables=%s: a rebuild would not change the tables' encryption", v["aria_encrypt_tables"])
	}
	tables, err := a.pending(ctx)
	if err != nil {
		return err
	}
	done, err := a.rebuild(ctx, tables)
	if err != nil && !a.Encrypt && len(done) > 0 {
		if rerr := a.reencrypt(context.Background(), done); rerr != nil {
			return fmt.Errorf("%w; and the %d table(s) rebuilt before it could not be encrypted again: %v", err, len(done), rerr)
		}
	}
	return err
}

func (a *AriaRebuildStep) Undo(ctx context.Context) error {
	if a.Encrypt {
		return nil
	}
	all, err := ReadAria(ctx, a.SQL)
	if err != nil {
		return err
	}
	var tables []AriaTable
	for _, t := range all {
		if !t.Encrypted && t.Encryptable() {
			tables = append(tables, t)
		}
	}
	return a.reencrypt(ctx, tables)
}

// keyPlugin returns the key plugin's status in the running server ("" when
// it is not loaded).
func (c Conn) keyPlugin(ctx context.Context) (string, error) {
	rows, err := c.Query(ctx, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME='"+KeyPlugin+"';")
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", nil
	}
	return rows[0][0], nil
}

// AriaEncryptStep is the step of 'engine enable' that rebuilds the Aria
// tables still in plaintext, once the server runs in engine mode (the key
// plugin active, aria_encrypt_tables on). Before that (not restarted
// since the option file was written) it returns nil and says why.
func AriaEncryptStep(ctx context.Context, c Conn) (step *AriaRebuildStep, notYet string, err error) {
	st, err := c.keyPlugin(ctx)
	if err != nil {
		return nil, "", err
	}
	if st != "ACTIVE" {
		return nil, "the server does not run with the key plugin " + KeyPlugin + " yet", nil
	}
	v, err := c.variables(ctx, "aria_encrypt_tables")
	if err != nil {
		return nil, "", err
	}
	if !on(v["aria_encrypt_tables"]) {
		return nil, "the server runs with aria_encrypt_tables=" + v["aria_encrypt_tables"], nil
	}
	return &AriaRebuildStep{SQL: c, Encrypt: true}, "", nil
}

// quoteIdent quotes a name for SQL with backticks.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
