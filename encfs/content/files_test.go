package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mysecure/mysecure/internal/atomicfile"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestOutputRoundTrip: a file output appears only on commit, whole; a
// tampered file never appears; stdout gets the stream as it goes.
func TestOutputRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := testKey(t, 1)
	plain := bytes.Repeat([]byte("0123456789abcdef"), 3000)

	encPath := filepath.Join(dir, "f.msec")
	dst, err := CreateOutput(encPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(encPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the output exists before it is committed: %v", err)
	}
	if err := EncryptTo(ctx, dst, bytes.NewReader(plain), key); err != nil {
		t.Fatal(err)
	}
	dst.Abort() // after Commit: nothing to do
	enc, err := os.ReadFile(encPath)
	if err != nil {
		t.Fatal(err)
	}

	var stdout bytes.Buffer
	out, err := CreateOutput("-", &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := DecryptTo(ctx, out, bytes.NewReader(enc), key, "f.msec"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), plain) {
		t.Fatal("round trip through stdout differs")
	}

	// One flipped bit: the output never appears, and Abort leaves nothing.
	enc[len(enc)/2] ^= 1
	decPath := filepath.Join(dir, "f.plain")
	dst, err = CreateOutput(decPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := DecryptTo(ctx, dst, bytes.NewReader(enc), key, "f.msec"); err == nil {
		t.Fatal("a tampered file decrypted")
	}
	dst.Abort()
	if got := dirNames(t, dir); len(got) != 1 || got[0] != "f.msec" {
		t.Fatalf("after a failed decrypt the directory holds %v", got)
	}

	// Aborted (a signal) before the commit: ErrAborted, nothing left.
	dst, err = CreateOutput(decPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst.Abort()
	if err := EncryptTo(ctx, dst, bytes.NewReader(plain), key); err == nil {
		t.Fatal("encrypt into an aborted output succeeded")
	}
	// Commit after an abort says so.
	dst, err = CreateOutput(decPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst.Abort()
	if err := dst.Commit(); !errors.Is(err, atomicfile.ErrAborted) {
		t.Fatalf("commit after abort: %v", err)
	}
	if got := dirNames(t, dir); len(got) != 1 {
		t.Fatalf("after an abort the directory holds %v", got)
	}

	// A cancelled run is not committed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	dst, err = CreateOutput(decPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Abort()
	if err := EncryptTo(cctx, dst, bytes.NewReader(plain), key); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled encrypt: %v", err)
	}
	if _, err := os.Stat(decPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a cancelled output was committed: %v", err)
	}
}

func TestCreateOutputBadDir(t *testing.T) {
	if _, err := CreateOutput(filepath.Join(t.TempDir(), "missing", "f"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}
