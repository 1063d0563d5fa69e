package content

import (
	"context"
	"io"
	"sync"
)

// CopyBuf is Copy's chunk: the stream format's batch size, so that each
// Write seals whole batches without buffering.
const CopyBuf = 1 << 20

// Copy copies src to dst until EOF, reading in its own goroutine a few
// chunks ahead, so that reading (and decrypting) overlaps with sealing and
// writing on a second core. It returns ctx.Err() as soon as ctx ends, even
// while src blocks (a quiet pipe); the reading goroutine then ends with
// its read, and the buffer it holds is wiped when it does. Every other
// buffer is wiped before Copy returns: they held plaintext.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) error {
	const nbuf = 3
	type chunk struct {
		b   []byte
		n   int
		err error
	}
	free := make(chan []byte, nbuf)
	full := make(chan chunk, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- make([]byte, CopyBuf)
	}
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	// drain wipes the buffers waiting in the channels. Copy runs it when
	// it returns; the reader runs it too when it ends after that (its last
	// read may have queued a buffer after Copy's drain).
	drain := func() {
		for {
			select {
			case b := <-free:
				clear(b)
			case c := <-full:
				clear(c.b)
			default:
				return
			}
		}
	}
	go func() {
		defer func() {
			select {
			case <-done:
				drain()
			default:
			}
		}()
		for {
			var b []byte
			select {
			case b = <-free:
			case <-done:
				return
			}
			n, err := io.ReadFull(src, b)
			select {
			case full <- chunk{b, n, err}:
			case <-done:
				clear(b)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// On return: stop the reader, and wipe every buffer it does not hold.
	defer func() {
		stop()
		drain()
	}()
	for {
		var c chunk
		select {
		case c = <-full:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.n > 0 {
			if _, err := dst.Write(c.b[:c.n]); err != nil {
				clear(c.b)
				return err
			}
		}
		switch c.err {
		case nil:
			free <- c.b
		case io.EOF, io.ErrUnexpectedEOF:
			clear(c.b)
			return nil
		default:
			clear(c.b)
			return c.err
		}
	}
}

// AsyncWriter writes copies of what it is given from its own goroutine,
// a few chunks behind (for ciphertext: sealing and writing overlap).
// Close waits for the queue and returns the first write error; Write
// reports an earlier one.
type AsyncWriter struct {
	w      io.Writer
	queue  chan []byte
	free   chan []byte
	done   chan struct{}
	mu     sync.Mutex
	err    error
	closed bool
}

// NewAsyncWriter starts the writing goroutine.
func NewAsyncWriter(w io.Writer) *AsyncWriter {
	a := &AsyncWriter{w: w, queue: make(chan []byte, 2), free: make(chan []byte, 3), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for b := range a.queue {
			if a.firstErr() == nil {
				if _, err := a.w.Write(b); err != nil {
					a.setErr(err)
				}
			}
			select {
			case a.free <- b[:0]:
			default:
			}
		}
	}()
	return a
}

func (a *AsyncWriter) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *AsyncWriter) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
	}
}

// Write queues a copy of p.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	if err := a.firstErr(); err != nil {
		return 0, err
	}
	var b []byte
	select {
	case b = <-a.free:
	default:
	}
	a.queue <- append(b, p...)
	return len(p), nil
}

// Close flushes the queue; it may be called more than once.
func (a *AsyncWriter) Close() error {
	if !a.closed {
		a.closed = true
		close(a.queue)
		<-a.done
	}
	return a.firstErr()
}

// Encrypt writes src to dst as one encrypted stream under key (`file
// encrypt`): reading, sealing and writing each run on their own
// goroutine. On an error dst holds a partial stream the caller discards.
func Encrypt(ctx context.Context, dst io.Writer, src io.Reader, key *Key) error {
	aw := NewAsyncWriter(dst)
	defer aw.Close()
	w, err := NewWriter(aw, key)
	if err != nil {
		return err
	}
	if err := Copy(ctx, w, src); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return aw.Close()
}

// Decrypt writes the plaintext of the encrypted stream src to dst, with
// the key of keys the stream names (`file decrypt`); name is src's name
// in errors. Reading and decrypting overlap with writing.
func Decrypt(ctx context.Context, dst io.Writer, src io.Reader, keys Keyring, name string) error {
	r, err := NewReader(src, keys, name)
	if err != nil {
		return err
	}
	return Copy(ctx, dst, r)
}
