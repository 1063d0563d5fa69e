// Package kdfchild computes Argon2id in a short-lived child process: the
// running executable started again with one hidden argument (Arg). The
// password goes to the child over a pipe (never argv or environment) and
// the derived key comes back over another; the child then exits and its
// memory goes with it. golang.org/x/crypto/argon2 hashes its input into a
// BLAKE2b state that it never clears, a heap object no caller can reach:
// run in a long-lived process (the mount daemon), the passphrase would stay
// there (docs/threat-model.md).
//
// A program that uses IDKey must call Serve at the very start of main when
// IsChild reports that it is the child. The package must not print to
// stdout other than the key, in the child, nor put secrets in argv, env or
// error messages.
package kdfchild

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Arg is the hidden argument that makes the executable the KDF child.
const Arg = "__mysecure-kdf-child"

// magic starts a request; the version changes with its layout.
const magic = "mysecure-kdf 1\n"

// Limits of a request: a parent never asks for more, a child refuses it.
const (
	maxPassword  = 1 << 20
	maxSalt      = 1 << 10
	maxKeyLen    = 1 << 10
	maxMemoryKiB = 4 * 1024 * 1024
	maxTime      = 64
)

// IsChild reports whether args (os.Args) start the KDF child.
func IsChild(args []string) bool { return len(args) == 2 && args[1] == Arg }

// started, when set (tests), sees each child once it runs.
var started func(*os.Process)

// IDKey is argon2.IDKey computed in a child process, of the password
// given in parts (concatenated). The caller keeps the parts and salt (and
// wipes them); the result is its to wipe.
//
// Each part goes to the pipe by write(2) from the caller's own buffer:
// IDKey makes no copy of it. A copy would pass through vector registers,
// which the kernel saves into a signal frame that the Go runtime never
// clears when a signal (the child's SIGCHLD, a preemption) comes soon
// after: TestDaemonMemoryCredentialCopies found the password so.
func IDKey(password [][]byte, salt []byte, time, memory uint32, threads uint8, keyLen uint32) ([]byte, error) {
	npw := 0
	for _, p := range password {
		npw += len(p)
	}
	if err := check(npw, len(salt), time, memory, threads, keyLen); err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		return nil, err
	}
	defer outR.Close()
	var stderr limitedBuffer
	cmd := &exec.Cmd{
		// The image this process runs, even if its file was replaced
		// or removed since (an upgrade under a running daemon).
		Path:   procfs.Path(os.Getpid(), "exe"),
		Args:   []string{"mysecure-kdf", Arg},
		Dir:    "/",
		Stdin:  inR,
		Stdout: outW,
		Stderr: &stderr,
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to start the KDF child process: %w", err)
	}
	if started != nil {
		started(cmd.Process)
	}
	_, werr := inW.Write(header(npw, salt, time, memory, threads, keyLen))
	for _, p := range password {
		if werr == nil && len(p) > 0 {
			_, werr = inW.Write(p)
		}
	}
	inW.Close()
	key := make([]byte, keyLen)
	n, rerr := io.ReadFull(outR, key)
	if rerr == nil {
		var extra [1]byte
		if m, _ := outR.Read(extra[:]); m > 0 {
			rerr = errors.New("more output than the key")
		}
	}
	if err := cmd.Wait(); err != nil {
		clear(key)
		return nil, fmt.Errorf("KDF child process failed: %w%s", err, stderr.detail())
	}
	if werr != nil || rerr != nil {
		clear(key)
		if werr != nil {
			return nil, fmt.Errorf("KDF child process: failed to send the request: %w", werr)
		}
		return nil, fmt.Errorf("KDF child process: bad output (%d of %d bytes): %v", n, keyLen, rerr)
	}
	return key, nil
}

func check(npw, nsalt int, time, memory uint32, threads uint8, keyLen uint32) error {
	switch {
	case npw > maxPassword || nsalt > maxSalt:
		return fmt.Errorf("KDF input too long (%d, %d bytes)", npw, nsalt)
	case keyLen < 1 || keyLen > maxKeyLen:
		return fmt.Errorf("KDF key length %d out of range 1..%d", keyLen, maxKeyLen)
	case time < 1 || time > maxTime || threads < 1 || memory > maxMemoryKiB:
		return fmt.Errorf("KDF parameters out of range (t=%d m=%d p=%d)", time, memory, threads)
	}
	return nil
}

// A request is magic, time, memory, threads, key length, then the salt
// and the password each after its length (big endian). header is all of
// it but the password's npw bytes: nothing secret.
func header(npw int, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	b := make([]byte, 0, len(magic)+21+len(salt))
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, time)
	b = binary.BigEndian.AppendUint32(b, memory)
	b = append(b, threads)
	b = binary.BigEndian.AppendUint32(b, keyLen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(salt)))
	b = append(b, salt...)
	return binary.BigEndian.AppendUint32(b, uint32(npw))
}

// Serve is the child: it reads one request from in, writes the key to out
// and returns the exit code (0, or 1 with a one-line reason on errw).
func Serve(in io.Reader, out, errw io.Writer) int {
	// Neither dumped on a crash nor readable by other users.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	key, err := serve(in)
	if err == nil {
		_, err = out.Write(key)
		clear(key)
	}
	if err != nil {
		fmt.Fprintf(errw, "mysecure kdf child: %v\n", err)
		return 1
	}
	return 0
}

func serve(in io.Reader) ([]byte, error) {
	var hdr [len(magic) + 17]byte
	if _, err := io.ReadFull(in, hdr[:]); err != nil {
		return nil, fmt.Errorf("failed to read the request: %w", err)
	}
	if string(hdr[:len(magic)]) != magic {
		return nil, errors.New("not a KDF request")
	}
	h := hdr[len(magic):]
	time, memory, threads := binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:]), h[8]
	keyLen, nsalt := binary.BigEndian.Uint32(h[9:]), binary.BigEndian.Uint32(h[13:])
	if nsalt > maxSalt {
		return nil, fmt.Errorf("salt of %d bytes", nsalt)
	}
	salt := make([]byte, nsalt)
	var npw [4]byte
	if _, err := io.ReadFull(in, salt); err != nil {
		return nil, fmt.Errorf("failed to read the salt: %w", err)
	}
	if _, err := io.ReadFull(in, npw[:]); err != nil {
		return nil, fmt.Errorf("failed to read the request: %w", err)
	}
	n := binary.BigEndian.Uint32(npw[:])
	if err := check(int(min(n, maxPassword+1)), int(nsalt), time, memory, threads, keyLen); err != nil {
		return nil, err
	}
	pw := make([]byte, n)
	defer clear(pw)
	if _, err := io.ReadFull(in, pw); err != nil {
		return nil, fmt.Errorf("failed to read the password: %w", err)
	}
	return argon2.IDKey(pw, salt, time, memory, threads, keyLen), nil
}

// limitedBuffer keeps the first 4 KiB a child writes to stderr.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) detail() string {
	s := strings.Join(strings.Fields(b.String()), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}
