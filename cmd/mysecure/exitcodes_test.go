package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
)

// TestExitCodesDocumented keeps docs/exit-codes.md equal to the exit*
// constants: every code has a row, every row a code.
func TestExitCodesDocumented(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "exitcodes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[int]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "exit") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
			n, _ := strconv.Atoi(lit.Value)
			if prev, dup := consts[n]; dup {
				t.Errorf("exit code %d is both %s and %s", n, prev, vs.Names[0].Name)
			}
			consts[n] = vs.Names[0].Name
		}
		return true
	})
	if len(consts) < 10 {
		t.Fatalf("found only %d exit constants", len(consts))
	}
	doc, err := os.ReadFile("../../docs/exit-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| *(\d+) *\|`).FindAllSubmatch(doc, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		rows[n] = true
	}
	for n, name := range consts {
		if !rows[n] {
			t.Errorf("%s = %d has no row in docs/exit-codes.md", name, n)
		}
	}
	for n := range rows {
		if _, ok := consts[n]; !ok {
			t.Errorf("docs/exit-codes.md documents %d, which no constant defines", n)
		}
	}
}

// TestClassify: the same condition gets the same code whether it comes
// from the local code or through the daemon's API.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{usagef("bad flag"), exitUsage},
		{withHint(volume.ErrIncorrectCredentials, "x"), exitCredentials},
		{fmt.Errorf("unlock: %w", volume.ErrIncorrectCredentials), exitCredentials},
		{fmt.Errorf("key add: %w", volume.ErrNotMasterCredential), exitUsage},
		{content.ErrCorrupt, exitData},
		{daemon.ErrNotRunning, exitNotMounted},
		{errInterrupted, exitInterrupted},
		{errors.New("something unexpected"), exitError},
	} {
		if got, _ := classify(tc.err); got != tc.want {
			t.Errorf("%T %v: exit %d, want %d", tc.err, tc.err, got, tc.want)
		}
	}
}

// TestPanicIsInternalError: a panic exits 1 with one line asking for a
// report, never 2 (usage) and never a stack trace without --debug.
func TestPanicIsInternalError(t *testing.T) {
	old := executeRoot
	defer func() { executeRoot = old }()
	executeRoot = func(*cobra.Command) error { panic("boom") }
	var out, errb bytes.Buffer
	code := run([]string{"status"}, strings.NewReader(""), &out, &errb)
	if code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	if s := errb.String(); !strings.Contains(s, "mysecure: error: internal error, please report: boom") || strings.Contains(s, "goroutine") {
		t.Fatalf("stderr: %q", s)
	}
}
