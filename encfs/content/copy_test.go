package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

func TestCopy(t *testing.T) {
	for _, size := range []int{0, 1, CopyBuf - 1, CopyBuf, 3*CopyBuf + 17} {
		src := make([]byte, size)
		rand.Read(src)
		var dst bytes.Buffer
		if err := Copy(context.Background(), &dst, bytes.NewReader(src)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst.Bytes(), src) {
			t.Fatalf("size %d: copy differs", size)
		}
	}
	boom := errors.New("boom")
	if err := Copy(context.Background(), io.Discard, io.MultiReader(bytes.NewReader(make([]byte, CopyBuf+5)), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
	if err := Copy(context.Background(), errWriter{boom}, bytes.NewReader(make([]byte, 10))); !errors.Is(err, boom) {
		t.Fatalf("write error: %v", err)
	}
}

// TestCopyCancelWhileReadBlocks: a cancelled copy returns at once even
// though its source never answers (before, it waited for the read).
func TestCopyCancelWhileReadBlocks(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Copy(ctx, io.Discard, pr) }()
	pw.Write([]byte("some"))
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Copy hung after cancellation while its source blocked")
	}
}

func TestAsyncWriter(t *testing.T) {
	var dst bytes.Buffer
	a := NewAsyncWriter(&dst)
	for i := 0; i < 100; i++ {
		a.Write([]byte{byte(i)})
	}
	if err := a.Close(); err != nil || dst.Len() != 100 || dst.Bytes()[99] != 99 {
		t.Fatalf("%v %d", err, dst.Len())
	}
	boom := errors.New("boom")
	b := NewAsyncWriter(errWriter{boom})
	b.Write([]byte("x"))
	if err := b.Close(); !errors.Is(err, boom) {
		t.Fatalf("close: %v", err)
	}
	if _, err := b.Write([]byte("y")); !errors.Is(err, boom) {
		t.Fatalf("write after error: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

// TestEncryptDecrypt: a stream made by Encrypt comes back with Decrypt,
// a wrong key is refused, and a cancelled context stops both.
func TestEncryptDecrypt(t *testing.T) {
	key := testKey(t, 1)
	plain := bytes.Repeat([]byte("mysecure "), 300000) // several batches
	var enc bytes.Buffer
	if err := Encrypt(context.Background(), &enc, bytes.NewReader(plain), key); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc.Bytes(), []byte("mysecure mysecure")) {
		t.Fatal("plaintext in the stream")
	}
	var dec bytes.Buffer
	if err := Decrypt(context.Background(), &dec, bytes.NewReader(enc.Bytes()), key, "x"); err != nil || !bytes.Equal(dec.Bytes(), plain) {
		t.Fatalf("round trip: %v (%d of %d bytes)", err, dec.Len(), len(plain))
	}
	if err := Decrypt(context.Background(), io.Discard, bytes.NewReader(enc.Bytes()), testKey(t, 2), "x"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Encrypt(ctx, io.Discard, bytes.NewReader(plain), key); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled encrypt: %v", err)
	}
}
