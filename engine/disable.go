package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
)

// Disabling engine mode takes two runs of 'engine disable' with a server
// restart between them, because MariaDB can decrypt tables online but not
// its redo log or binary logs:
//
//  1. Decrypt (the server runs with the Encrypting option file):
//     innodb_encrypt_tables, aria_encrypt_tables and encrypt_tmp_disk_tables
//     are set OFF at run time, every Aria table is rebuilt (Aria keeps the
//     encryption a table was created with), the background threads
//     decrypt every InnoDB tablespace (the run waits for them), and the
//     option file becomes the Decrypting one: encryption off, the key
//     plugin still loaded.
//  2. Finish (after a restart with the Decrypting file, which rewrote the
//     redo log in plaintext and started a plaintext binary log): refused
//     while a tablespace or a binary log is still encrypted; then the
//     option file is removed, and the server's next start loads no key
//     plugin.
//
// On a hardened server the guard's pins follow each phase.

// Stage is what the next 'engine disable' run does.
type Stage int

// The stages.
const (
	StageOff     Stage = iota // engine mode is off: nothing to do
	StageDecrypt              // run 1
	StageFinish               // run 2
)

// PlanName is the name of the stage's plan in the state file.
func (s Stage) PlanName() string {
	if s == StageFinish {
		return "engine-disable-finish"
	}
	return "engine-disable"
}

// Run says which run of 'engine disable' the stage is ("" for StageOff).
func (s Stage) Run() string {
	switch s {
	case StageDecrypt:
		return "run 1 of 2: decrypt"
	case StageFinish:
		return "run 2 of 2: turn the key plugin off"
	}
	return ""
}

// Refusal says why the server cannot leave engine mode safely now. It
// is an inplace.ErrRefused (nothing was changed), and comes wrapped in
// the hint (internal/hint) that says what to do about it.
type Refusal struct {
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }
func (r *Refusal) Unwrap() error { return inplace.ErrRefused }

func refuse(reason, remedy string) error { return hint.Wrap(&Refusal{Reason: reason}, remedy) }

// Disable is 'engine disable' for one server.
type Disable struct {
	Setup *Setup
	// SQL reaches the running server.
	SQL Conn
	// Timeout bounds the wait for the background threads (default 30m);
	// Poll is the interval of the checks (default 2s).
	Timeout, Poll time.Duration
}

// Stage reads the option file engine mode wrote: Encrypting means run 1,
// Decrypting run 2, none means engine mode is off.
func (d *Disable) Stage() (Stage, error) {
	o := &d.Setup.Opts
	if o.Flavor != MariaDB {
		return 0, refuse("engine disable supports MariaDB only",
			"MySQL decrypts a table with ALTER TABLE ... ENCRYPTION='N' (see docs/engine.md)")
	}
	b, err := os.ReadFile(o.CnfPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return StageOff, nil
	case err != nil:
		return 0, err
	case !strings.HasPrefix(string(b), Marker):
		return 0, fmt.Errorf("%s %w", o.CnfPath(), ErrForeignFile)
	case string(b) == o.PhaseConfig(Encrypting):
		return StageDecrypt, nil
	case string(b) == o.PhaseConfig(Decrypting):
		return StageFinish, nil
	}
	return 0, refuse(o.CnfPath()+" was changed since engine mode wrote it",
		"'mysecure engine enable' (same flags) writes it back; then disable")
}

// Plan checks that the server can take the stage's steps now (a
// *Refusal when not) and returns them.
func (d *Disable) Plan(ctx context.Context, st Stage) ([]plan.Step, error) {
	s := d.Setup
	o := &s.Opts
	var steps []plan.Step
	switch st {
	case StageOff:
		return nil, nil
	case StageDecrypt:
		if err := d.preflightDecrypt(ctx); err != nil {
			return nil, err
		}
		steps = []plan.Step{
			&VarStep{SQL: d.SQL, Name: "innodb_encrypt_tables", Value: "OFF", Prev: "FORCE"},
			&VarStep{SQL: d.SQL, Name: "encrypt_tmp_disk_tables", Value: "OFF", Prev: "ON"},
			&VarStep{SQL: d.SQL, Name: "aria_encrypt_tables", Value: "OFF", Prev: "ON"},
			&AriaRebuildStep{SQL: d.SQL},
			&DecryptWaitStep{SQL: d.SQL, Timeout: d.Timeout, Poll: d.Poll},
		}
		if s.Hardened != nil {
			steps = append(steps, &GuardStep{Setup: s, Phase: Decrypting, UndoPhase: Encrypting})
		}
		steps = append(steps, &CnfSwapStep{Path: o.CnfPath(), From: o.PhaseConfig(Encrypting), To: o.PhaseConfig(Decrypting), Phase: Decrypting})
	case StageFinish:
		if err := d.preflightFinish(ctx); err != nil {
			return nil, err
		}
		steps = []plan.Step{&CnfSwapStep{Path: o.CnfPath(), From: o.PhaseConfig(Decrypting), Phase: Off}}
		if s.Hardened != nil {
			steps = append(steps, &GuardStep{Setup: s, Phase: Off, UndoPhase: Decrypting})
		}
	}
	return steps, nil
}

// variables reads global variables of the running server.
func (c Conn) variables(ctx context.Context, names ...string) (map[string]string, error) {
	rows, err := c.Query(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(names, "','")+"');")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		if len(r) == 2 {
			out[r[0]] = r[1]
		} else if len(r) == 1 {
			out[r[0]] = ""
		}
	}
	return out, nil
}

func (d *Disable) keyPluginActive(ctx context.Context) error {
	st, err := d.SQL.keyPlugin(ctx)
	if err != nil {
		return err
	}
	if st != "ACTIVE" {
		return refuse("the server does not run with the key plugin "+KeyPlugin,
			"start it with engine mode's option file ("+d.Setup.Opts.CnfPath()+") and the mount up, then run 'mysecure engine disable' again")
	}
	return nil
}

func (d *Disable) preflightDecrypt(ctx context.Context) error {
	if err := d.keyPluginActive(ctx); err != nil {
		return err
	}
	v, err := d.SQL.variables(ctx, "innodb_encryption_threads")
	if err != nil {
		return err
	}
	if n, _ := strconv.Atoi(v["innodb_encryption_threads"]); n <= 0 {
		return refuse("innodb_encryption_threads is 0: no background thread would decrypt the tables",
			"SET GLOBAL innodb_encryption_threads = 4, then run 'mysecure engine disable' again")
	}
	rows, err := d.SQL.Query(ctx, "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE CREATE_OPTIONS LIKE '%`ENCRYPTED`=''YES''%' ORDER BY 1;")
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		var names []string
		for _, r := range rows {
			names = append(names, r[0])
		}
		return refuse("tables created with ENCRYPTED=YES stay encrypted whatever the server's settings: "+strings.Join(names, ", "),
			"ALTER TABLE name ENCRYPTED=DEFAULT for each (a rebuild), then run 'mysecure engine disable' again")
	}
	return nil
}

func (d *Disable) preflightFinish(ctx context.Context) error {
	if err := d.keyPluginActive(ctx); err != nil {
		return err
	}
	v, err := d.SQL.variables(ctx, "innodb_encrypt_log", "encrypt_binlog", "encrypt_tmp_files", "innodb_encrypt_tables",
		"log_bin", "log_bin_index", "relay_log_index", "datadir")
	if err != nil {
		return err
	}
	for _, name := range []string{"innodb_encrypt_log", "encrypt_binlog", "encrypt_tmp_files", "innodb_encrypt_tables"} {
		if on(v[name]) {
			return refuse("the server still runs with "+name+"="+v[name]+": it was not restarted since the first 'engine disable'",
				"restart the server (it still loads the key plugin; the redo log is rewritten in plaintext as it starts), then run 'mysecure engine disable' again")
		}
	}
	st, err := ReadStatus(ctx, d.SQL)
	if err != nil {
		return err
	}
	var enc []string
	for _, ts := range st.Tablespaces {
		if ts.Encrypted {
			enc = append(enc, ts.Name)
		}
	}
	if len(enc) > 0 {
		return refuse("tablespaces still encrypted: "+strings.Join(enc, ", "),
			"the background threads decrypt them ('mysecure engine status' shows the progress); run 'mysecure engine disable' again when they are done")
	}
	for _, idx := range []struct{ kind, path string }{{"binary", v["log_bin_index"]}, {"relay", v["relay_log_index"]}} {
		if idx.path == "" || idx.kind == "binary" && !on(v["log_bin"]) {
			continue
		}
		files, err := logIndex(idx.path, v["datadir"])
		if errors.Is(err, os.ErrNotExist) && idx.kind == "relay" {
			continue
		}
		if err != nil {
			return fmt.Errorf("the %s log index: %w", idx.kind, err)
		}
		var encrypted []string
		next := ""
		for _, f := range files {
			e, err := BinlogFileEncrypted(f)
			if err != nil {
				return fmt.Errorf("the %s log %s: %w", idx.kind, f, err)
			}
			if e {
				encrypted, next = append(encrypted, filepath.Base(f)), ""
			} else if next == "" {
				next = filepath.Base(f)
			}
		}
		if len(encrypted) == 0 {
			continue
		}
		remedy := "the server needs the key to read them (replication, point-in-time recovery, crash recovery): "
		if idx.kind == "binary" && next != "" {
			remedy += "PURGE BINARY LOGS TO '" + next + "' once no replica and no recovery needs them"
		} else {
			remedy += "let the replica apply and purge them (relay_log_purge)"
		}
		return refuse(fmt.Sprintf("%s logs still encrypted: %s", idx.kind, strings.Join(encrypted, ", ")),
			remedy+", then run 'mysecure engine disable' again")
	}
	return nil
}

// on reports whether a server variable's value means on.
func on(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "", "0", "OFF", "NO", "FALSE":
		return false
	}
	return true
}

// logIndex reads a binary or relay log index: one file a line, relative
// to the datadir unless absolute.
func logIndex(index, datadir string) ([]string, error) {
	if !filepath.IsAbs(index) {
		index = filepath.Join(datadir, index)
	}
	b, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if !filepath.IsAbs(l) {
			l = filepath.Join(datadir, l)
		}
		out = append(out, l)
	}
	return out, nil
}
