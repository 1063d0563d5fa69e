package policies

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
)

// failStep fails its Apply, so that a run is rolled back.
type failStep struct{}

func (failStep) ID() string                                  { return "fail" }
func (failStep) Describe() string                            { return "fail" }
func (failStep) Check(context.Context) (bool, string, error) { return false, "", nil }
func (failStep) Apply(context.Context) error                 { return errors.New("no") }
func (failStep) Undo(context.Context) error                  { return nil }

// TestApplied: the bundles with a state file that was not rolled back;
// other files and hidden ones are not bundles.
func TestApplied(t *testing.T) {
	store := t.TempDir()
	if got, err := Applied(store); err != nil || len(got) != 0 {
		t.Fatalf("no state dir: %v %v", got, err)
	}
	ctx := context.Background()
	for _, name := range []string{"mysql-datadir", "mysqldump-nightly"} {
		if _, err := (&plan.Runner{StatePath: StatePath(store, name)}).Apply(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (&plan.Runner{StatePath: StatePath(store, "mysql-host")}).Apply(ctx, "mysql-host", []plan.Step{failStep{}}); err == nil {
		t.Fatal("the failing step applied")
	}
	os.WriteFile(StatePath(store, ".hidden"), []byte("{}"), 0o600)
	os.WriteFile(StateDir(store)+"/notes.txt", []byte("x"), 0o600)
	got, err := Applied(store)
	sort.Strings(got)
	if err != nil || !reflect.DeepEqual(got, []string{"mysql-datadir", "mysqldump-nightly"}) {
		t.Fatalf("applied %v %v", got, err)
	}
}

// TestWithLast: the values of the last apply fill in what --set does not
// name, for parameters the bundle still has.
func TestWithLast(t *testing.T) {
	b, err := Load("mysql-datadir")
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	sets := map[string]string{"datadir": "/srv/now"}
	b.WithLast(sets, store)
	if !reflect.DeepEqual(sets, map[string]string{"datadir": "/srv/now"}) {
		t.Fatalf("no last apply: %v", sets)
	}
	var param string
	for _, n := range b.ParamNames() {
		if n != "datadir" {
			param = n
			break
		}
	}
	if param == "" {
		t.Fatal("mysql-datadir has one parameter only")
	}
	r := &plan.Runner{StatePath: StatePath(store, b.Name), Params: map[string]string{"datadir": "/srv/then", param: "last", "gone": "x"}}
	if _, err := r.Apply(context.Background(), b.Name, nil); err != nil {
		t.Fatal(err)
	}
	b.WithLast(sets, store)
	if want := map[string]string{"datadir": "/srv/now", param: "last"}; !reflect.DeepEqual(sets, want) {
		t.Fatalf("sets %v, want %v", sets, want)
	}
}

func TestReportAndDriftError(t *testing.T) {
	ok := plan.Finding{ID: "a", Step: "a", Done: true}
	missing := plan.Finding{ID: "b", Step: "b", Drift: "missing"}
	changed := plan.Finding{ID: "c", Step: "c", Done: true, Drift: "fingerprint changed"}
	good := NewReport("x", map[string]string{"p": "1"}, []plan.Finding{ok})
	if !good.OK || good.Bundle != "x" || good.Params["p"] != "1" || len(good.Findings) != 1 {
		t.Fatalf("report %+v", good)
	}
	if err := DriftError([]Report{good}, []string{"x"}); err != nil {
		t.Fatalf("no drift: %v", err)
	}
	bad := NewReport("y", nil, []plan.Finding{ok, missing, changed})
	if bad.OK {
		t.Fatal("a report with drift is OK")
	}
	err := DriftError([]Report{good, bad}, []string{"x", "./y.yaml"})
	if !errors.Is(err, plan.ErrDrift) || err.Error() != "drift: 2 step(s) of x, ./y.yaml not as the policy says" {
		t.Fatalf("drift: %v", err)
	}
	if h, _ := hint.Of(err); !strings.Contains(h, "'mysecure policy apply NAME'") {
		t.Errorf("hint %q", h)
	}
}
