package content

import (
	"context"
	"io"

	"github.com/mysecure/mysecure/internal/atomicfile"
)

// Whole files in and out of the stream format (`mysecure file encrypt`
// and `decrypt`): the output is committed only when all of it was
// written (and, decrypting, authenticated).

// Output receives one whole encrypted or decrypted file. Commit makes it
// final; Abort (deferred, or from a signal handler) discards it unless
// Commit ran.
type Output interface {
	io.Writer
	Commit() error
	Abort()
}

// CreateOutput returns the Output for path: a file that appears whole
// on Commit and never half-written (atomicfile.Pending; Commit after
// Abort is atomicfile.ErrAborted), or stdout itself when path is "-"
// (written as it goes: Commit and Abort do nothing).
func CreateOutput(path string, stdout io.Writer) (Output, error) {
	if path == "-" {
		return streamOutput{stdout}, nil
	}
	p, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	return p, nil
}

type streamOutput struct{ io.Writer }

func (streamOutput) Commit() error { return nil }
func (streamOutput) Abort()        {}

// EncryptTo encrypts src into dst under key (Encrypt) and commits dst.
// On an error dst is not committed; the caller aborts it.
func EncryptTo(ctx context.Context, dst Output, src io.Reader, key *Key) error {
	if err := Encrypt(ctx, dst, src, key); err != nil {
		return err
	}
	return dst.Commit()
}

// DecryptTo decrypts src into dst with the key of keys its header names
// (Decrypt; name is src's name in errors) and commits dst once every
// block authenticated. On an error dst is not committed; the caller
// aborts it.
func DecryptTo(ctx context.Context, dst Output, src io.Reader, keys Keyring, name string) error {
	if err := Decrypt(ctx, dst, src, keys, name); err != nil {
		return err
	}
	return dst.Commit()
}
