package backup

import (
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// frameSize is the plaintext of one zstd frame. Frames are independent, so
// they are compressed on several cores and simply concatenated (a valid
// zstd stream: every decoder reads multi-frame input). Measured in
// docs/performance-backup.md: the stream encoder keeps one core busy, and
// that bounds a physical backup.
const frameSize = 4 << 20

// parallelZstd compresses a stream as a sequence of independent frames on
// workers goroutines and writes them to w in order. Memory is bounded:
// at most 2*workers frames are in flight.
type parallelZstd struct {
	enc    *zstd.Encoder
	w      io.Writer
	cur    []byte
	queue  chan chan result
	jobs   chan job
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	pool   sync.Pool
	closed bool
}

type job struct {
	in  []byte
	out chan result
}

type result struct {
	frame []byte
	in    []byte
	err   error
}

func newParallelZstd(w io.Writer, level, workers int) (*parallelZstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(workers), zstd.WithWindowSize(frameSize), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	p := &parallelZstd{enc: enc, w: w, queue: make(chan chan result, workers), jobs: make(chan job), done: make(chan struct{})}
	p.pool.New = func() any { return make([]byte, 0, frameSize) }
	p.cur = p.pool.Get().([]byte)[:0]
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				frame := p.enc.EncodeAll(j.in, make([]byte, 0, len(j.in)/2+1024))
				j.out <- result{frame: frame, in: j.in}
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

// writer writes the frames in the order they were cut.
func (p *parallelZstd) writer() {
	defer close(p.done)
	for out := range p.queue {
		r := <-out
		if p.firstErr() == nil {
			if _, err := p.w.Write(r.frame); err != nil {
				p.setErr(err)
			}
		}
		p.pool.Put(r.in[:0])
	}
}

func (p *parallelZstd) dispatch() {
	if len(p.cur) == 0 {
		return
	}
	out := make(chan result, 1)
	p.queue <- out // blocks while 'workers' frames wait to be written
	p.jobs <- job{in: p.cur, out: out}
	p.cur = p.pool.Get().([]byte)[:0]
}

// Write buffers p and hands full frames to the workers. It returns the
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
		k := min(frameSize-len(p.cur), len(b))
		p.cur = append(p.cur, b[:k]...)
		b = b[k:]
		if len(p.cur) == frameSize {
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
	p.dispatch()
	close(p.jobs)
	p.wg.Wait()
	close(p.queue)
	<-p.done
	return p.firstErr()
}
