package engine

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Conn says how to reach a running server with its command-line client:
// the program (default mariadb, else mysql) and its connection options
// (--socket, --defaults-file; never a password).
type Conn struct {
	Client string
	Args   []string
}

// Query runs sql through the client and returns its rows (tab-separated
// fields, no header).
func (c Conn) Query(ctx context.Context, sql string) ([][]string, error) {
	client := c.Client
	if client == "" {
		client = "mariadb"
		if _, err := exec.LookPath(client); err != nil {
			client = "mysql"
		}
	}
	// --defaults-file must come first; the caller puts it first in Args.
	args := append(append([]string(nil), c.Args...), "--batch", "--skip-column-names")
	cmd := exec.CommandContext(ctx, client, args...)
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", client, err, strings.TrimSpace(errb.String()))
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// Tablespace is one InnoDB tablespace and its encryption.
type Tablespace struct {
	Name      string `json:"name"`
	Encrypted bool   `json:"encrypted"`
	// Rotating: the background threads are (re)writing it now.
	Rotating bool `json:"rotating,omitempty"`
	// PagesDone/PagesTotal: progress of a tablespace being rotated.
	PagesDone  int64  `json:"pages_done,omitempty"`
	PagesTotal int64  `json:"pages_total,omitempty"`
	KeyID      uint32 `json:"key_id,omitempty"`
	KeyVersion uint32 `json:"key_version,omitempty"`
}

// Status is what a running server says about its own encryption.
type Status struct {
	Plugin      string            `json:"plugin"` // the key plugin's status, "" when not loaded
	Variables   map[string]string `json:"variables"`
	Tablespaces []Tablespace      `json:"tablespaces"`
	Encrypted   int               `json:"encrypted"`
	// AriaEncrypted counts the Aria tables whose files are encrypted.
	AriaEncrypted int `json:"aria_encrypted"`
	// Plaintext lists what is still written in plaintext: InnoDB
	// tablespaces not (yet) encrypted, Aria tables not rebuilt since
	// aria_encrypt_tables was turned on, and tables of engines that do
	// not encrypt (MyISAM, CSV, ARCHIVE).
	Plaintext []string `json:"plaintext"`
	// Unchecked lists the Aria tables whose encryption could not be read
	// (their files are not readable here), and why.
	Unchecked []string `json:"unchecked,omitempty"`
}

// Done reports whether the key plugin is active and nothing is plaintext.
func (s *Status) Done() bool { return s.Plugin == "ACTIVE" && len(s.Plaintext) == 0 }

// statusVariables are the settings engine status shows.
var statusVariables = []string{"innodb_encrypt_tables", "innodb_encrypt_log", "innodb_encrypt_temporary_tables",
	"encrypt_tmp_files", "encrypt_tmp_disk_tables", "encrypt_binlog", "aria_encrypt_tables", "innodb_encryption_threads",
	"file_key_management_filename", "innodb_default_encryption_key_id"}

// ReadStatus asks a running MariaDB server for its encryption settings
// and the progress of the background encryption of existing tables.
func ReadStatus(ctx context.Context, c Conn) (*Status, error) {
	st := &Status{Variables: map[string]string{}}
	rows, err := c.Query(ctx, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_TYPE='ENCRYPTION';\n"+
		"SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(statusVariables, "','")+"');")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		switch len(r) {
		case 1:
			st.Plugin = r[0]
		case 2:
			st.Variables[r[0]] = r[1]
		}
	}
	// Every InnoDB tablespace, with its row in the encryption table when
	// it has one (a tablespace never touched by the encryption threads
	// has none).
	rows, err = c.Query(ctx, `SELECT t.NAME, IFNULL(e.ENCRYPTION_SCHEME,0), IFNULL(e.ROTATING_OR_FLUSHING,0),
 IFNULL(e.KEY_ROTATION_PAGE_NUMBER,0), IFNULL(e.KEY_ROTATION_MAX_PAGE_NUMBER,0), IFNULL(e.CURRENT_KEY_ID,0), IFNULL(e.CURRENT_KEY_VERSION,0)
 FROM (SELECT SPACE, NAME FROM information_schema.INNODB_SYS_TABLESPACES UNION SELECT 0, 'innodb_system') t
 LEFT JOIN information_schema.INNODB_TABLESPACES_ENCRYPTION e ON e.SPACE = t.SPACE ORDER BY t.NAME;`)
	if err != nil {
		return nil, err
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	for _, r := range rows {
		if len(r) < 7 {
			continue
		}
		ts := Tablespace{Name: r[0], Encrypted: r[1] != "0", Rotating: r[2] != "0", PagesDone: num(r[3]), PagesTotal: num(r[4]),
			KeyID: uint32(num(r[5])), KeyVersion: uint32(num(r[6]))}
		st.Tablespaces = append(st.Tablespaces, ts)
		switch {
		case ts.Encrypted:
			st.Encrypted++
		case ts.Name == "innodb_temporary":
			// Encrypted page by page (innodb_encrypt_temporary_tables),
			// not by the rotation threads: it never shows a scheme.
		default:
			st.Plaintext = append(st.Plaintext, "InnoDB "+ts.Name)
		}
	}
	aria, err := ReadAria(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, t := range aria {
		switch {
		case t.Err != "":
			st.Unchecked = append(st.Unchecked, "Aria "+t.String()+": "+t.Err)
		case t.Encrypted:
			st.AriaEncrypted++
		case !t.Encryptable():
			st.Plaintext = append(st.Plaintext, fmt.Sprintf("Aria %s (ROW_FORMAT=%s: Aria encrypts ROW_FORMAT=PAGE tables only)", t, t.RowFormat))
		default:
			st.Plaintext = append(st.Plaintext, "Aria "+t.String()+" (not rebuilt since aria_encrypt_tables was turned on)")
		}
	}
	rows, err = c.Query(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES
 WHERE ENGINE IN ('MyISAM','CSV','ARCHIVE','MRG_MyISAM') AND TABLE_SCHEMA NOT IN ('information_schema','performance_schema')
 AND NOT (TABLE_SCHEMA = 'mysql' AND TABLE_NAME IN ('general_log','slow_log')) ORDER BY 1, 2;`)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if len(r) == 3 {
			st.Plaintext = append(st.Plaintext, fmt.Sprintf("%s %s.%s (the engine does not encrypt)", r[2], r[0], r[1]))
		}
	}
	return st, nil
}
