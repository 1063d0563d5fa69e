package backup

import (
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/mysecure/mysecure/internal/procs"
)

// frameSize is the plaintext of one zstd frame. Frames are independent, so
// they are compressed on several cores and simply concatenated (a valid
// zstd stream: every decoder reads multi-frame input). Measured in
// docs/performance-backup.md: the stream encoder keeps one core busy, and
// that bounds a physical backup.
const frameSize = 4 << 20

// frameBound is the most a frame of frameSize can take compressed.
const frameBound = frameSize + frameSize/128 + 1024

// compressWorkers is how many frames are compressed at once: the cores,
// at least 2 and at most 4, so that memory stays bounded (each worker
// holds an input and an output buffer of about 4 MiB). The cores are
// GOMAXPROCS as the process started with it (which follows a container's
// CPU limit), not as the mount daemon raised it for go-fuse's readers
// (encfs/fusefs/sched.go): scheduled backups run inside the daemon.
func compressWorkers() int {
	return min(4, max(2, procs.Initial()))
}

// pair is one frame's input and output buffers; a fixed set of pairs
// circulates, so memory does not grow with the stream.
type pair struct {
	in, out []byte
	ready   chan struct{}
}

// parallelZstd compresses a stream as a sequence of independent frames on
// workers goroutines and writes them to w in order.
type parallelZstd struct {
	enc    *zstd.Encoder
	w      io.Writer
	cur    *pair
	free   chan *pair // pairs ready for new input
	jobs   chan *pair // to the workers
	order  chan *pair // to the writer, in stream order
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	closed bool
}

func newParallelZstd(w io.Writer, level, workers int) (*parallelZstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(workers), zstd.WithWindowSize(frameSize))
	if err != nil {
		return nil, err
	}
	n := workers + 1
	p := &parallelZstd{enc: enc, w: w, free: make(chan *pair, n), jobs: make(chan *pair, n),
		order: make(chan *pair, n), done: make(chan struct{})}
	for i := 0; i < n; i++ {
		p.free <- &pair{in: make([]byte, 0, frameSize), out: make([]byte, 0, frameBound), ready: make(chan struct{}, 1)}
	}
	p.cur = <-p.free
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for f := range p.jobs {
				f.out = p.enc.EncodeAll(f.in, f.out[:0])
				f.ready <- struct{}{}
			}
		}()
	}
	go p.writer()
	return p, nil
}

func (p *parallelZstd) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *parallelZstd) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// writer writes the frames in the order they were cut, and frees their
// buffers.
func (p *parallelZstd) writer() {
	defer close(p.done)
	for f := range p.order {
		<-f.ready
		if p.firstErr() == nil {
			if _, err := p.w.Write(f.out); err != nil {
				p.setErr(err)
			}
		}
		f.in = f.in[:0]
		p.free <- f
	}
}

func (p *parallelZstd) dispatch() {
	if len(p.cur.in) == 0 {
		return
	}
	p.order <- p.cur
	p.jobs <- p.cur
	p.cur = <-p.free // waits while every buffer is in flight
}

// Write buffers b and hands full frames to the workers. It returns the
// first error of the underlying writer.
func (p *parallelZstd) Write(b []byte) (int, error) {
	if p.closed {
		return 0, errors.New("write after close")
	}
	if err := p.firstErr(); err != nil {
		return 0, err
	}
	n := len(b)
	for len(b) > 0 {
		k := min(frameSize-len(p.cur.in), len(b))
		p.cur.in = append(p.cur.in, b[:k]...)
		b = b[k:]
		if len(p.cur.in) == frameSize {
			p.dispatch()
		}
	}
	return n, nil
}

// Close compresses what is left and waits until every frame is written.
func (p *parallelZstd) Close() error {
	if p.closed {
		return p.firstErr()
	}
	p.closed = true
	if len(p.cur.in) > 0 {
		p.order <- p.cur
		p.jobs <- p.cur
	}
	close(p.jobs)
	p.wg.Wait()
	close(p.order)
	<-p.done
	return p.firstErr()
}
