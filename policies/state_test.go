package policies

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sort"
	"testing"

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
