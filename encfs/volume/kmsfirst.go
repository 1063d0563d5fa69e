package volume

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrNoKMSSlot: the kms slots were asked for and the volume has none.
var ErrNoKMSSlot = errors.New("the volume has no kms key slot")

// UseKMS reports whether an unattended start (a boot unit's mount) tries
// v's kms slots first: when forced, or when v has kms slots and no other
// credential was named. forced on a volume without kms slots is
// ErrNoKMSSlot.
func (v *Volume) UseKMS(forced, credentialNamed bool) (bool, error) {
	has := len(v.KMSSlots()) > 0
	if forced && !has {
		return false, ErrNoKMSSlot
	}
	return has && (forced || !credentialNamed), nil
}

// TryKMS opens v through its kms slots with c. When none opens (a
// *KMSUnlockError) and the caller has another credential to try
// (canFallBack), it reports each slot's failure to warn and returns no
// keys and no error: the caller unlocks with that credential. Without a
// fallback, the *KMSUnlockError is returned, saying that there is none.
// Other errors are returned as they are.
func (v *Volume) TryKMS(c KMS, canFallBack bool, warn func(slot *KMSError)) (*Keys, error) {
	k, err := v.Unlock(c)
	var ue *KMSUnlockError
	if err == nil || !errors.As(err, &ue) {
		return k, err
	}
	if !canFallBack {
		return nil, fmt.Errorf("%w; no passphrase to fall back to", err)
	}
	for _, s := range ue.Slots {
		warn(s)
	}
	return nil, nil
}

// Absolute returns s with the certificate, key and CA paths made absolute
// against the caller's working directory: the daemon that opens the slot
// starts in /.
func (s KMSSettings) Absolute() (KMSSettings, error) {
	for _, p := range []*string{&s.Cert, &s.Key, &s.CA} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return KMSSettings{}, err
		}
		*p = abs
	}
	return s, nil
}
