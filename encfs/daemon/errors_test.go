package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
)

// TestAPIErrorRoundTrip: an error the daemon answers with reaches the
// client as an APIError that matches the same sentinel (errors.Is), with
// its message.
func TestAPIErrorRoundTrip(t *testing.T) {
	for _, sentinel := range []error{
		volume.ErrIncorrectCredentials, volume.ErrUnknownCategory, volume.ErrCategoryInUse,
		volume.ErrCategoryExists, volume.ErrBadCategoryName, volume.ErrLastCategory,
		rollback.ErrRollback, os.ErrNotExist, os.ErrExist, os.ErrPermission,
		ErrUsage, ErrDenied, ErrInUse, ErrConflict,
	} {
		err := fmt.Errorf("doing it: %w", sentinel)
		_, sent := apiError(err)
		b, jerr := json.Marshal(sent)
		if jerr != nil {
			t.Fatal(jerr)
		}
		var got APIError
		if jerr := json.Unmarshal(b, &got); jerr != nil {
			t.Fatal(jerr)
		}
		got.resolve(nil)
		if !errors.Is(&got, sentinel) || got.Error() != err.Error() {
			t.Errorf("%v: sent as %q, received %q unwrapping to %v", sentinel, sent.Code, got.Error(), got.Unwrap())
		}
	}
	// os.ErrNotExist used to travel as "usage" (exit 2 instead of 6).
	if _, ae := apiError(os.ErrNotExist); ae.Code != CodeNotExist {
		t.Errorf("os.ErrNotExist travels as %q", ae.Code)
	}
	_, ae := apiError(errors.New("boom"))
	if ae.Code != CodeInternal || ae.resolve(nil).Unwrap() != nil {
		t.Errorf("an unknown error: %q unwrapping to %v", ae.Code, ae.Unwrap())
	}
}

// fixedCode is a Jobs whose Code always answers the same.
type fixedCode string

func (fixedCode) Run(context.Context, json.RawMessage, bool, func(any)) (any, error) { return nil, nil }
func (c fixedCode) Code(error) string                                                { return string(c) }

// TestJobErrorFallsBack: a job error the module has no code for gets the
// daemon's (an unknown category inside a job used to exit 1); the
// module's code wins, and its decoder is asked first.
func TestJobErrorFallsBack(t *testing.T) {
	jobSentinel := errors.New("job sentinel")
	jobErr := func(code string) error {
		if code == "job_code" {
			return jobSentinel
		}
		return nil
	}
	for _, tc := range []struct {
		moduleCode string
		err        error
		wantCode   string
		wantIs     error
	}{
		{"", volume.ErrUnknownCategory, CodeUnknownCategory, volume.ErrUnknownCategory},
		{CodeInternal, os.ErrNotExist, CodeNotExist, os.ErrNotExist},
		{"job_code", os.ErrNotExist, "job_code", jobSentinel},
	} {
		ae := jobError(fixedCode(tc.moduleCode), tc.err)
		if ae.Code != tc.wantCode {
			t.Errorf("%v with module code %q: sent %q, want %q", tc.err, tc.moduleCode, ae.Code, tc.wantCode)
		}
		if !errors.Is(ae.resolve(jobErr), tc.wantIs) {
			t.Errorf("%v: received error does not match %v", tc.err, tc.wantIs)
		}
	}
}
