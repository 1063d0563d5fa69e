package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// OpScheduleReload makes the daemon re-read its schedules (root only).
const OpScheduleReload = "schedule-reload"

// Jobs serves backup requests sent to the daemon's control API (it has
// the methods of encfs/daemon.Jobs and JobHinter; the daemon does not
// know what a backup is).
type Jobs struct {
	Service *Service
	// Reload re-reads the schedules and says how many jobs there are;
	// nil when the daemon runs no scheduler.
	Reload func() (int, error)
}

// Run decodes and runs one request; root is false for members of the
// backup group.
func (j Jobs) Run(ctx context.Context, raw json.RawMessage, root bool, emit func(any)) (any, error) {
	req, err := DecodeRequest(raw)
	if err != nil {
		return nil, err
	}
	if req.Op == OpScheduleReload {
		if !root {
			return nil, fmt.Errorf("%w: %q is for root only", ErrDenied, req.Op)
		}
		if j.Reload == nil {
			return nil, fmt.Errorf("%w: this daemon has no scheduler", ErrUsage)
		}
		n, err := j.Reload()
		if err != nil {
			return nil, err
		}
		return map[string]int{"jobs": n}, nil
	}
	defer req.Credentials.Wipe()
	return j.Service.Do(ctx, req, root, func(p Progress) { emit(p) })
}

// Code is the wire code of an error of Run (WireCode).
func (Jobs) Code(err error) string { return WireCode(err) }

// Hint is what to do about an error of Run: the rule to add for a tool
// the access rules denied, else "".
func (Jobs) Hint(err error) string {
	var te *ToolError
	if errors.As(err, &te) {
		return te.Hint()
	}
	return ""
}
