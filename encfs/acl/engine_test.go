package acl

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

// filled parses rule lines and fills their paths and fingerprints as the
// daemon does.
func filled(t testing.TB, id *Identifier, lines ...string) *RuleSet {
	t.Helper()
	rs := &RuleSet{}
	for _, l := range lines {
		r := mustParse(t, l)
		if err := id.FillRule(&r); err != nil {
			t.Fatalf("FillRule(%q): %v", l, err)
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs
}

type decideCase struct {
	name        string
	req         Request
	allowed     bool
	reason      string // substring of Reason
	rule        int    // 1-based number of the expected Decision.Rule; 0 for none
	wantProcess bool
}

func checkDecisions(t *testing.T, e *Engine, cases []decideCase) {
	t.Helper()
	rules := e.Rules().Rules
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(c.req)
			if d.Allowed != c.allowed || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("Decide(%+v) = allowed %v %q, want %v %q", c.req, d.Allowed, d.Reason, c.allowed, c.reason)
			}
			switch {
			case c.rule == 0 && d.Rule != nil:
				t.Errorf("Rule = %v, want none", d.Rule)
			case c.rule != 0 && (d.Rule == nil || !d.Rule.Equal(rules[c.rule-1])):
				t.Errorf("Rule = %v, want rule %d (%v)", d.Rule, c.rule, rules[c.rule-1])
			}
			if (d.Process != nil) != c.wantProcess {
				t.Errorf("Process = %v, want one: %v", d.Process, c.wantProcess)
			} else if d.Process != nil && d.Process.Pid != c.req.Pid {
				t.Errorf("Process.Pid = %d, want %d", d.Process.Pid, c.req.Pid)
			}
		})
	}
}

func TestEngineBinaries(t *testing.T) {
	dir := t.TempDir()
	sleep := realPath(t, "sleep")
	allowed := filepath.Join(dir, "allowed")
	copyExe(t, sleep, allowed)
	copied := filepath.Join(dir, "copied")
	copyExe(t, sleep, copied)
	tainted := filepath.Join(dir, "tainted")
	copyExe(t, sleep, tainted)

	id := NewIdentifier(IdentifierOptions{})
	e := NewEngine(id)
	e.SetRules(filled(t, id,
		"ALLOW @mysql * "+allowed,
		"ALLOW @mysqlbackup *.sql "+allowed,
		"ALLOW @mysql * "+tainted,
		"DENY @mysql *.cnf "+allowed,
		"ALLOW @* shared/* "+allowed,
	))
	appendByte(t, tainted) // after its fingerprint was taken: a patched binary

	pAllowed := startSleep(t, allowed)
	pCopied := startSleep(t, copied)
	pTainted := startSleep(t, tainted)
	pSleep := startSleep(t, sleep)
	req := func(pid int, cat, path string) Request { return Request{Pid: pid, Category: cat, Path: path} }

	checkDecisions(t, e, []decideCase{
		{"allowed binary", req(pAllowed, "mysql", "ibdata1"), true, "allowed by rule 1", 1, true},
		{"allowed deep path", req(pAllowed, "mysql", "db/t1.ibd"), true, "allowed by rule 1", 1, true},
		{"other binary", req(pSleep, "mysql", "ibdata1"), false, "no rule allows " + sleep, 1, true},
		{"copy at another path", req(pCopied, "mysql", "ibdata1"), false, "no rule allows " + copied, 1, true},
		{"modified binary at the allowed path", req(pTainted, "mysql", "ibdata1"), false,
			"fingerprint mismatch for " + tainted + " (binary changed; run 'mysecure acl update')", 3, true},
		{"DENY wins", req(pAllowed, "mysql", "etc/my.cnf"), false, "denied by rule 4", 4, true},
		{"modified binary, other file", req(pTainted, "mysql", "my.cnf"), false, "fingerprint mismatch", 3, true},
		{"pattern", req(pAllowed, "mysqlbackup", "full.sql"), true, "allowed by rule 2", 2, true},
		{"pattern mismatch", req(pAllowed, "mysqlbackup", "full.sql.gz"), false, "rule 2 allows " + allowed + " only on files matching \"*.sql\"", 2, true},
		{"@* matches every category", req(pAllowed, "ndbdata", "shared/x"), true, "allowed by rule 5", 5, true},
		{"category without rules", req(pAllowed, "ndbdata", "x"), false, "only on files matching", 5, true},
		{"unknown process", req(1<<30, "mysql", "ibdata1"), false, "caller not identified", 1, false},
		{"absolute request path", req(pAllowed, "mysql", "/ibdata1"), false, "bad request", 0, false},
		{"dot-dot request path", req(pAllowed, "mysql", "a/../b"), false, "bad request", 0, false},
		{"bad category", req(pAllowed, "*", "x"), false, "bad request", 0, false},
	})

	// DENY matches by path or fingerprint: a copy of a denied program is
	// denied too, even where another rule allows its path.
	e2 := NewEngine(id)
	e2.SetRules(filled(t, id,
		"ALLOW @mysql * "+copied,
		"DENY @mysql * "+allowed,
	))
	checkDecisions(t, e2, []decideCase{
		{"DENY by fingerprint", req(pCopied, "mysql", "x"), false, "denied by rule 2", 2, true},
	})
}

func TestEngineNoRulesAndDenyAll(t *testing.T) {
	sleep := realPath(t, "sleep")
	pid := startSleep(t, sleep)
	id := NewIdentifier(IdentifierOptions{})
	e := NewEngine(id)
	r := Request{Pid: pid, Category: "mysql", Path: "x"}
	checkDecisions(t, e, []decideCase{{"no rules", r, false, "no rules", 0, true}})

	e.SetRules(filled(t, id, "ALLOW @mysql * "+sleep))
	checkDecisions(t, e, []decideCase{{"allowed", r, true, "allowed by rule 1", 1, true}})

	e.DenyAll("rules tampered: deny all")
	checkDecisions(t, e, []decideCase{{"deny all", r, false, "rules tampered: deny all", 0, true}})
	if len(e.Rules().Rules) != 1 {
		t.Errorf("DenyAll dropped the rules")
	}

	e.SetRules(e.Rules())
	checkDecisions(t, e, []decideCase{{"SetRules clears deny all", r, true, "allowed by rule 1", 1, true}})

	// The engine keeps its own copy.
	rs := e.Rules()
	rs.Rules[0].Exe.Path = "/elsewhere"
	d := e.Decide(r)
	if !d.Allowed {
		t.Fatalf("changing the result of Rules changed the engine: %s", d.Reason)
	}
	d.Rule.Category = "other"
	if e.Rules().Rules[0].Category != "mysql" {
		t.Fatal("changing Decision.Rule changed the engine")
	}
}

func TestEngineUsers(t *testing.T) {
	testenv.RequireRoot(t)
	sleep := realPath(t, "sleep")
	nobody := lookupTestUID(t, "nobody")
	cmd := exec.Command(sleep, "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	pid := start(t, cmd)

	id := NewIdentifier(IdentifierOptions{})
	e := NewEngine(id)
	e.SetRules(filled(t, id, "ALLOW @mysql * /bin/sleep --user=nobody"))
	checkDecisions(t, e, []decideCase{
		{"listed uid", Request{Pid: pid, Uid: nobody, Category: "mysql", Path: "x"}, true, "allowed by rule 1", 1, true},
		{"other uid", Request{Pid: pid, Uid: 0, Category: "mysql", Path: "x"}, false, "only for uid", 1, true},
	})
	if d := e.Decide(Request{Pid: pid, Uid: nobody, Category: "mysql", Path: "x"}); d.Process.Uid != nobody {
		t.Errorf("Process.Uid = %d, want %d", d.Process.Uid, nobody)
	}
}

func TestEngineShellAndChildren(t *testing.T) {
	testenv.RequireCommands(t, "bash", "sleep")
	bash, sleep := realPath(t, "bash"), realPath(t, "sleep")
	dir := t.TempDir()
	script := filepath.Join(dir, "report.sh")
	body := "sleep 30\nexit 0" // not the last command: bash must fork, not exec
	writeScript(t, script, body)
	otherScript := filepath.Join(dir, "other.sh")
	writeScript(t, otherScript, body)
	taintedScript := filepath.Join(dir, "tainted.sh")
	writeScript(t, taintedScript, body)

	id := NewIdentifier(IdentifierOptions{})
	e := NewEngine(id)
	e.SetRules(filled(t, id,
		"ALLOW @mysql * "+script+" --shell=/bin/bash --children=/bin/sleep",
		"ALLOW @mysql * "+taintedScript+" --shell=/bin/bash",
	))
	writeScript(t, taintedScript, body+"\ncat /secret")

	run := func(args ...string) (shellPid, sleepPid int) {
		t.Helper()
		shellPid = start(t, exec.Command(bash, args...))
		return shellPid, waitChild(t, shellPid, sleep)
	}
	bashPid, childPid := run(script)
	otherPid, otherChild := run(otherScript)
	cPid, cChild := run("-c", "sleep 30; exit 0")
	// bash -s reads its commands from standard input (a pipe kept open).
	sCmd := exec.Command(bash, "-s", script)
	if _, err := sCmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	sPid := start(t, sCmd)
	tPid, _ := run(taintedScript)
	loneSleep := startSleep(t, sleep)

	req := func(pid int) Request { return Request{Pid: pid, Category: "mysql", Path: "x"} }
	checkDecisions(t, e, []decideCase{
		{"interpreter running the script", req(bashPid), true, "allowed by rule 1", 1, true},
		{"child of the script", req(childPid), true, "allowed by rule 1", 1, true},
		{"interpreter running another script", req(otherPid), false, "no rule allows " + bash + " running " + otherScript, 1, true},
		{"child of another script", req(otherChild), false, "its parent " + bash + " running " + otherScript, 1, true},
		{"bash -c", req(cPid), false, "runs no identifiable script", 1, true},
		{"child of bash -c", req(cChild), false, "is not the rule's program", 1, true},
		{"bash -s script", req(sPid), false, `option "-s" runs commands from elsewhere`, 1, true},
		{"modified script", req(tPid), false, "fingerprint mismatch for " + taintedScript, 2, true},
		{"sleep not started by the script", req(loneSleep), false, "is not the rule's program", 1, true},
	})

	// A DENY --children rule denies the child of the script.
	e.SetRules(&RuleSet{Rules: append(e.Rules().Rules, filled(t, id, "DENY @mysql *.cnf "+script+" --shell=/bin/bash --children=/bin/sleep").Rules...)})
	checkDecisions(t, e, []decideCase{
		{"DENY child", Request{Pid: childPid, Category: "mysql", Path: "my.cnf"}, false, "denied by rule 3", 3, true},
		{"DENY shell", Request{Pid: bashPid, Category: "mysql", Path: "my.cnf"}, false, "denied by rule 3", 3, true},
		{"ALLOW still applies elsewhere", Request{Pid: childPid, Category: "mysql", Path: "ibdata1"}, true, "allowed by rule 1", 1, true},
	})
}

// TestEngineConcurrent swaps rules while deciding; run with -race.
func TestEngineConcurrent(t *testing.T) {
	sleep := realPath(t, "sleep")
	pid := startSleep(t, sleep)
	id := NewIdentifier(IdentifierOptions{})
	e := NewEngine(id)
	allow := filled(t, id, "ALLOW @mysql * "+sleep)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				d := e.Decide(Request{Pid: pid, Category: "mysql", Path: "x"})
				if !d.Allowed && d.Reason != "no rules" && d.Reason != "tampered" {
					t.Errorf("unexpected decision %q", d.Reason)
				}
			}
		})
	}
	for i := range 50 {
		switch i % 3 {
		case 0:
			e.SetRules(allow)
		case 1:
			e.SetRules(nil)
		default:
			e.DenyAll("tampered")
		}
	}
	wg.Wait()
}
