package main

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/kmip"
)

// TestClassifyKMS: a kms slot that cannot be made or opened is a
// credential failure (exit 3) with the kms hint, except a client key that
// others can read (exit 7, as for a key file).
func TestClassifyKMS(t *testing.T) {
	down := &volume.KMSError{Slot: 2, URL: "kmip://kms:5696", Err: fmt.Errorf("%w: kms:5696: %w", kmip.ErrUnreachable, syscall.ECONNREFUSED)}
	refused := &volume.KMSError{URL: "kmip://kms:5696", Err: &kmip.ServerError{Op: "Encrypt", Reason: 1}}
	insecure := &volume.KMSError{Slot: 2, URL: "kmip://kms:5696", Err: volume.ErrInsecureKeyFile}
	for _, tc := range []struct {
		err  error
		want int
		hint string
	}{
		{&volume.KMSUnlockError{Slots: []*volume.KMSError{down}}, exitCredentials, hintKMS},
		{withHint(fmt.Errorf("%w; no passphrase to fall back to", &volume.KMSUnlockError{Slots: []*volume.KMSError{down}}), hintKMS), exitCredentials, hintKMS},
		{fmt.Errorf("1 of 1 kms slots do not open the volume: %w", down), exitCredentials, hintKMS},
		{fmt.Errorf("failed to create kms key slot: %w", refused), exitCredentials, hintKMSAdd},
		{fmt.Errorf("failed to create kms key slot: %w", insecure), exitPermission, ""},
	} {
		code, hint := classify(tc.err)
		if code != tc.want || (tc.hint != "" && hint != tc.hint) {
			t.Errorf("%v: exit %d hint %q, want %d %q", tc.err, code, hint, tc.want, tc.hint)
		}
	}
	if got := down.Error(); got != "kms slot 2: kmip://kms:5696: connection refused" {
		t.Errorf("server down reads %q", got)
	}
}
