package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/internal/plan"
)

// A bundle applied on a host leaves its state file (internal/plan) in a
// directory of the store, one per bundle: NAME.json. It records the
// values of the apply, which a later check and apply reuse.

// StateDir holds the state files of the bundles applied with store.
func StateDir(store string) string { return filepath.Join(store, "ms.policy") }

// StatePath is the state file of the bundle name.
func StatePath(store, name string) string { return filepath.Join(StateDir(store), name+".json") }

// Applied names the bundles applied with store: those with a state file
// whose last run was not rolled back (none when the directory does not
// exist).
func Applied(store string) ([]string, error) {
	ents, err := os.ReadDir(StateDir(store))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(n, ".") {
			continue
		}
		if st, err := plan.LoadState(filepath.Join(StateDir(store), e.Name())); err == nil && st != nil && st.Status != plan.StatusRolledBack {
			out = append(out, n)
		}
	}
	return out, nil
}

// WithLast adds to sets the values of b's last apply with store, for the
// parameters that sets does not name and b still has.
func (b *Bundle) WithLast(sets map[string]string, store string) {
	st, err := plan.LoadState(StatePath(store, b.Name))
	if err != nil || st == nil {
		return
	}
	params := b.AllParams()
	for k, v := range st.Params {
		if _, ok := sets[k]; ok {
			continue
		}
		if _, known := params[k]; known {
			sets[k] = v
		}
	}
}
