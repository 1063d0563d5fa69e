package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

// TestHardenPhysicalBackup (issue 15 items 2 and 4): on a hardened
// server, the rule harden adds for the backup tool lets `backup --type
// physical` read the datadir, through the daemon and locally, and the
// backup restores into a datadir a server starts on with the same data.
// Without the rule, the backup fails with the denial and the rule to add
// in its error, and `status` lists the denial.
func TestHardenPhysicalBackup(t *testing.T) {
	testenv.RequireCommands(t, "mariadb-backup", "mbstream")
	h := newHardenEnv(t)
	tool, err := exec.LookPath("mariadb-backup")
	if err != nil {
		t.Fatal(err)
	}
	if tool, err = filepath.EvalSymlinks(tool); err != nil {
		t.Fatal(err)
	}
	ddRel := strings.TrimPrefix(h.datadir, "/")
	rule := "ALLOW @mysql " + ddRel + "/* " + tool + " --user=0"

	// A rule for the backup tool alone (named by its link) does not make
	// harden refuse: it is kept, and harden adds none.
	const own = "ALLOW @mysql * /usr/bin/mariabackup --user=0"
	h.aclAdd(own)
	if out := h.harden(0, "--dry-run"); !strings.Contains(out, "keep rule: ") || strings.Contains(out, "add rule: "+rule) || strings.Contains(out, "refused") {
		t.Fatalf("dry run with a rule for the backup tool: %s", out)
	}
	h.ms(0, append([]string{"acl", "del", own}, h.creds()...)...)
	// Without it, the dry run shows the rule harden adds.
	if out := h.harden(0, "--dry-run"); !strings.Contains(out, "add rule: "+rule) || strings.Contains(out, "refused") {
		t.Fatalf("dry run: %s", out)
	}
	h.harden(0)
	if rules := h.ms(0, "acl", "list"); !strings.Contains(rules, rule) {
		t.Fatalf("harden did not add the backup tool's rule %q:\n%s", rule, rules)
	}

	s, err := h.start(h.bin+"-guard", nil)
	if err != nil {
		t.Fatalf("start through the guard: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	password := "Hb-Pw-" + time.Now().Format("150405.000000")
	if out, err := s.Client(ctx, "INSERT INTO shop.t VALUES ('after-harden'); CREATE TABLE shop.big (id INT PRIMARY KEY, v TEXT); INSERT INTO shop.big SELECT seq, REPEAT(MD5(seq), 20) FROM shop.seq_1_to_5000; CREATE USER 'bk'@'localhost' IDENTIFIED BY '"+password+"'; GRANT ALL ON *.* TO 'bk'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pw := filepath.Join(h.dir, "pw")
	os.WriteFile(pw, []byte(password), 0o600)
	h.ms(0, "backup", "credentials", "set", "--user", "bk", "--mysql-socket", s.Socket, "--password-file", pw)
	os.Remove(pw)
	before := dbState(t, s)
	if before["table shop.big"] == "" || before["table shop.t"] == "" {
		t.Fatalf("state: %v", before)
	}

	// Without the rule: the error names the denial and the rule to add,
	// through the daemon and locally; status lists it.
	h.ms(0, append([]string{"acl", "del", rule}, h.creds()...)...)
	denied := "denied: " + tool + " opening " + filepath.Join(h.mnt, "mysql", ddRel) + "/"
	hint := "mysecure acl add '" + rule + "'"
	for _, args := range [][]string{
		{"backup", "--type", "physical"},
		append([]string{"backup", "--type", "physical", "--local"}, h.creds()...),
	} {
		out := h.ms(10, args...)
		t.Logf("%s: %s", args[len(args)-1], out)
		if !strings.Contains(out, denied) || !strings.Contains(out, "mysecure: hint: if "+tool+" should read these files: "+hint) {
			t.Fatalf("%v without the rule: the error does not name the denial %q and the rule %q:\n%s", args, denied, hint, out)
		}
	}
	st := h.ms(0, "status")
	if !strings.Contains(st, "recent denials") || !regexp.MustCompile(regexp.QuoteMeta(tool)+`  @mysql  \d+ denied`).MatchString(st) || !strings.Contains(st, "to allow it: "+hint) {
		t.Fatalf("status does not list the denial:\n%s", st)
	}
	var sj struct {
		RecentDenials []struct {
			Program string   `json:"program"`
			Rule    string   `json:"rule"`
			Files   []string `json:"files"`
		} `json:"recent_denials"`
	}
	mustJSON(t, h.ms(0, "status", "--json"), &sj)
	found := false
	for _, g := range sj.RecentDenials {
		found = found || (g.Program == tool && g.Rule == rule && len(g.Files) > 0)
	}
	if !found {
		t.Fatalf("status --json: %+v", sj.RecentDenials)
	}
	if n := len(h.catalogIDs(t)); n != 0 {
		t.Fatalf("a failed backup is in the catalog: %d", n)
	}

	// The suggested rule is harden's: with it back, physical backups
	// work through the daemon and locally.
	h.aclAdd(rule)
	h.ms(0, "backup", "--type", "physical")
	h.ms(0, append([]string{"backup", "--type", "physical", "--local"}, h.creds()...)...)
	ids := h.catalogIDs(t)
	if len(ids) != 2 {
		t.Fatalf("catalog: %v", ids)
	}
	h.ms(0, "backup", "verify", "--all")

	// Restore the daemon's backup and start a plain server on it.
	target := filepath.Join(h.dir, "prepared")
	datadir := filepath.Join(h.dir, "srv2", "data")
	h.ms(0, "restore", ids[0], "--target", target, "--copy-back", datadir)
	srv2 := startSandbox(t, sandbox.Options{Dir: filepath.Join(h.dir, "srv2"), DataDir: datadir})
	sameState(t, "a server on the restored datadir", before, dbState(t, srv2))
	if out, err := srv2.Client(ctx, "SELECT GROUP_CONCAT(v ORDER BY v) FROM shop.t"); err != nil || !strings.Contains(out, "after-harden,before-harden") {
		t.Fatalf("restored rows: %q %v", out, err)
	}

	// --undo removes the rule harden added, and only it.
	s.Stop()
	h.harden(0, "--undo")
	if rules := h.ms(0, "acl", "list"); strings.Contains(rules, tool) {
		t.Fatalf("the backup tool's rule is left after --undo:\n%s", rules)
	}
}

// catalogIDs lists the backup IDs, oldest first.
func (h *hardenEnv) catalogIDs(t *testing.T) []string {
	t.Helper()
	var res struct {
		Backups []struct {
			ID string `json:"id"`
		} `json:"backups"`
	}
	out := h.ms(0, "backup", "list", "--json")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("backup list: %v %s", err, out)
	}
	var ids []string
	for _, b := range res.Backups {
		ids = append(ids, b.ID)
	}
	return ids
}
