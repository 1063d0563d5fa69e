package policies

import (
	"fmt"
	"strings"

	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
)

// Report is one bundle compared with the host, as 'policy check --json'
// prints it.
type Report struct {
	Bundle   string            `json:"bundle"`
	Params   map[string]string `json:"params"`
	OK       bool              `json:"ok"`
	Findings []plan.Finding    `json:"findings"`
}

// NewReport makes the report of bundle (with its values params) from
// plan.Check's findings: OK when none drifted.
func NewReport(bundle string, params map[string]string, fs []plan.Finding) Report {
	return Report{Bundle: bundle, Params: params, OK: len(plan.Drifted(fs)) == 0, Findings: fs}
}

// DriftError is plan.ErrDrift with the number of steps of reports that
// drifted, refs naming the bundles as the user did, and what to do; nil
// when nothing drifted.
func DriftError(reports []Report, refs []string) error {
	drift := 0
	for _, r := range reports {
		drift += len(plan.Drifted(r.Findings))
	}
	if drift == 0 {
		return nil
	}
	return hint.Wrap(fmt.Errorf("%w: %d step(s) of %s not as the policy says", plan.ErrDrift, drift, strings.Join(refs, ", ")),
		"'mysecure policy apply NAME' puts missing steps back; a changed fingerprint needs 'mysecure acl update' once you trust the new binary")
}
