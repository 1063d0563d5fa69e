package sshclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Fleet is a set of hosts worked on together: `mysecure remote` runs a
// command or asks for the status on each, an NDB roll connects to all of
// them before it changes anything.
type Fleet struct {
	Targets []*Target
	// Parallel is how many hosts are worked on at a time (0: all at
	// once).
	Parallel int
	// Options gives the options of one host's connection (each target
	// may have its own passphrase-file); nil: the zero Options.
	Options func(*Target) Options
}

// ResolveAll resolves names (as Resolve does each), in order.
func (s *Settings) ResolveAll(names []string) ([]*Target, error) {
	var ts []*Target
	for _, n := range names {
		t, err := s.Resolve(n)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (f *Fleet) options(t *Target) Options {
	if f.Options == nil {
		return Options{}
	}
	return f.Options(t)
}

// Result is one host's outcome of Each.
type Result struct {
	Host string
	Err  error
}

// Each connects to every target (at most Parallel at a time), runs fn on
// the connection and closes it. Results come back in the order of the
// targets, whatever the order the hosts finish in.
func (f *Fleet) Each(ctx context.Context, fn func(ctx context.Context, c *Client) error) []Result {
	_, res := Gather(ctx, f, func(ctx context.Context, c *Client) (struct{}, error) {
		return struct{}{}, fn(ctx, c)
	})
	return res
}

// Gather is Each for a function that returns a value: vals[i] is what fn
// returned on the targets[i] (the zero value where it was not reached).
func Gather[T any](ctx context.Context, f *Fleet, fn func(ctx context.Context, c *Client) (T, error)) (vals []T, res []Result) {
	vals = make([]T, len(f.Targets))
	res = make([]Result, len(f.Targets))
	for i, t := range f.Targets {
		res[i].Host = t.Label()
	}
	fanOut(len(f.Targets), f.Parallel, func(i int) {
		t := f.Targets[i]
		c, err := Dial(ctx, t, f.options(t))
		if err != nil {
			res[i].Err = err
			return
		}
		defer c.Close()
		vals[i], res[i].Err = fn(ctx, c)
	})
	return vals, res
}

// fanOut runs fn(0) ... fn(n-1), at most parallel at a time (0 or less:
// all at once), and returns when all have returned.
func fanOut(n, parallel int, fn func(i int)) {
	if parallel <= 0 {
		parallel = max(n, 1)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// DialAll connects to every target in order, one at a time, and returns
// the clients in that order. The first host that cannot be reached stops
// it: the connections made before are closed and the error names the
// host. Multi-host changes call it before they change anything.
func (f *Fleet) DialAll(ctx context.Context) ([]*Client, error) {
	var cs []*Client
	for _, t := range f.Targets {
		c, err := Dial(ctx, t, f.options(t))
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, fmt.Errorf("%s: %w", t.Label(), err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// FleetError is a run on several hosts in which some failed. It unwraps
// to the worst failure, which decides how the run ends (its exit code):
// a host that could not be reached or refused us outranks a remote
// command that failed (*ExitError); among equals the first host in order
// wins.
type FleetError struct {
	Failed []Result // the hosts that failed, in order
	Hosts  int      // how many hosts the run had
	Worst  error
}

func (e *FleetError) Error() string {
	return fmt.Sprintf("%d of %d hosts failed", len(e.Failed), e.Hosts)
}

func (e *FleetError) Unwrap() error { return e.Worst }

// Failure is the error of a run's results: nil when every host
// succeeded; with one host, its own error; else a *FleetError.
func Failure(res []Result) error {
	var fe FleetError
	var ee *ExitError
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		fe.Failed = append(fe.Failed, r)
		if fe.Worst == nil || (errors.As(fe.Worst, &ee) && !errors.As(r.Err, &ee)) {
			fe.Worst = r.Err
		}
	}
	switch {
	case fe.Worst == nil:
		return nil
	case len(res) == 1:
		return fe.Worst
	}
	fe.Hosts = len(res)
	return &fe
}

// Outputs hands out each host's stdout and stderr: for one host the
// writers themselves; for several, writers that put "HOST: " in front of
// every line and never interleave the lines of two hosts.
type Outputs struct {
	stdout, stderr io.Writer
	prefix         bool
	mu             sync.Mutex // held while a line is written
	open           []*PrefixWriter
	openMu         sync.Mutex
}

// NewOutputs returns the outputs of a run on hosts hosts.
func NewOutputs(stdout, stderr io.Writer, hosts int) *Outputs {
	return &Outputs{stdout: stdout, stderr: stderr, prefix: hosts > 1}
}

// For returns the writers of the host labelled label, and flush, which
// writes a pending partial line of these writers (call it when the
// host's output has ended).
func (o *Outputs) For(label string) (stdout, stderr io.Writer, flush func()) {
	if !o.prefix {
		return o.stdout, o.stderr, func() {}
	}
	po := &PrefixWriter{W: o.stdout, Prefix: label + ": ", Mu: &o.mu}
	pe := &PrefixWriter{W: o.stderr, Prefix: label + ": ", Mu: &o.mu}
	o.openMu.Lock()
	o.open = append(o.open, po, pe)
	o.openMu.Unlock()
	return po, pe, func() {
		pe.Flush()
		po.Flush()
	}
}

// Flush writes every host's pending partial line (see
// PrefixWriter.Flush); call it when all output has ended.
func (o *Outputs) Flush() {
	o.openMu.Lock()
	defer o.openMu.Unlock()
	for _, w := range o.open {
		w.Flush()
	}
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
