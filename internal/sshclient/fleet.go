package sshclient

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// Result is one host's outcome of Each.
type Result struct {
	Host string
	Err  error
}

// Each connects to every target (at most parallel at a time; 0: all at
// once), runs fn on the connection and closes it. Results come back in
// the order of targets. It is the building block of multi-host
// operations (remote exec and status, NDB rolling onboarding).
func Each(ctx context.Context, targets []*Target, parallel int, o Options, fn func(ctx context.Context, c *Client) error) []Result {
	if parallel <= 0 {
		parallel = len(targets)
	}
	res := make([]Result, len(targets))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		res[i].Host = t.Label()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := Dial(ctx, t, o)
			if err != nil {
				res[i].Err = err
				return
			}
			defer c.Close()
			res[i].Err = fn(ctx, c)
		}()
	}
	wg.Wait()
	return res
}

// PrefixWriter writes each complete line to W with Prefix in front; the
// lines of several writers sharing W (and its Mutex) never interleave.
// Call Flush at the end for a last line without a newline.
type PrefixWriter struct {
	W      io.Writer
	Prefix string
	Mu     *sync.Mutex
	buf    []byte
}

func (p *PrefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if err := p.emit(p.buf[:i+1]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
}

func (p *PrefixWriter) emit(line []byte) error {
	if p.Mu != nil {
		p.Mu.Lock()
		defer p.Mu.Unlock()
	}
	_, err := p.W.Write(append([]byte(p.Prefix), line...))
	return err
}

// Flush writes a pending partial line, ending it with a newline.
func (p *PrefixWriter) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := p.emit(append(p.buf, '\n'))
	p.buf = nil
	return err
}
