// Package secretfile reads a secret (a passphrase, a salt, a password)
// from a file or an inherited descriptor (/dev/fd/N).
//
// Secrets reach mysecure only through files, file descriptors or a
// no-echo prompt on the controlling terminal; never through argv or the
// environment, where other users and crash reporters can read them. This
// package is the file half; it must not prompt, print or keep a copy of
// what it read.
package secretfile

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Max bounds how much of a secret file is read.
const Max = 64 << 10

// TooLargeError is a secret file longer than Max bytes.
type TooLargeError struct{ What string }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s file is larger than %d bytes", e.What, Max)
}

// Read reads the secret in path (a file or /dev/fd/N), dropping one
// trailing newline (LF or CRLF). what names the secret in errors
// ("passphrase", "salt"). loose is the permission bits of a regular file
// that grants group or others any access (0 when it grants none, or when
// path is not a regular file), checked on the descriptor that was read:
// the caller warns about it. The caller wipes the secret.
func Read(path, what string) (secret []byte, loose fs.FileMode, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to open %s file: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, Max+1))
	if err != nil {
		clear(b)
		return nil, 0, fmt.Errorf("failed to read %s file: %w", what, err)
	}
	if len(b) > Max {
		clear(b)
		return nil, 0, &TooLargeError{What: what}
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		loose = fi.Mode().Perm()
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, loose, nil
}
