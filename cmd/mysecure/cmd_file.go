package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/volume"
)

// defaultFileCategory is the category `file encrypt` uses unless told:
// the one meant for files that travel (backups).
const defaultFileCategory = "mysqlbackup"

func newFileCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "file",
		Short: "Encrypt or decrypt single files offline (no mount, no daemon)",
		Long: `Encrypt or decrypt one file with the volume's keys, without a mount or a
daemon. A copy of the store's mysecure.conf and a credential are all another
machine needs to decrypt a file encrypted here. IN and OUT may be - for
stdin and stdout.`,
	}
	cmd.AddCommand(newFileEncryptCommand(g), newFileDecryptCommand(g))
	return cmd
}

type fileOptions struct {
	Category string
	Force    bool
	Creds    credOptions
}

func (o *fileOptions) AddFlags(f *pflag.FlagSet, what string) {
	f.StringVar(&o.Category, "category", "", what)
	f.BoolVarP(&o.Force, "force", "f", false, "overwrite OUT if it exists")
	o.Creds.AddFlags(f)
}

func newFileEncryptCommand(g *globalOptions) *cobra.Command {
	var opts fileOptions
	cmd := &cobra.Command{
		Use:     "encrypt IN OUT",
		Short:   "Encrypt IN into OUT with a category's key",
		Example: `  mysecure file encrypt --store /var/lib/mysecure/storage dump.sql dump.sql.msec`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFile(cmd.Context(), opts, g, args[0], args[1], true)
		},
	}
	opts.AddFlags(cmd.Flags(), "category whose key encrypts (default @"+defaultFileCategory+")")
	return cmd
}

func newFileDecryptCommand(g *globalOptions) *cobra.Command {
	var opts fileOptions
	cmd := &cobra.Command{
		Use:   "decrypt IN OUT",
		Short: "Decrypt IN into OUT; every block is authenticated",
		Long: `Decrypt IN into OUT. The file's header names its category key; --category
insists on one. OUT appears only when the whole file decrypted and
authenticated; on any error it is removed. With OUT = -, plaintext is written
as blocks authenticate, and the exit code says whether all of it did.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFile(cmd.Context(), opts, g, args[0], args[1], false)
		},
	}
	opts.AddFlags(cmd.Flags(), "accept only files of this category")
	return cmd
}

func runFile(ctx context.Context, opts fileOptions, g *globalOptions, in, out string, encrypt bool) error {
	cat := strings.TrimPrefix(opts.Category, "@")
	if encrypt && cat == "" {
		cat = defaultFileCategory
	}
	if cat != "" && !volume.ValidCategory(cat) {
		return usagef(fmt.Sprintf("bad category name %q", opts.Category))
	}
	if out != "-" && !opts.Force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("output %s: %w", out, os.ErrExist)
		}
	}
	src, err := openInput(in, g.in)
	if err != nil {
		return err
	}
	defer src.Close()

	v, k, err := unlock(g, &opts.Creds)
	if err != nil {
		return err
	}
	defer k.Wipe()
	if cat != "" && !v.Config.HasCategory(cat) {
		return unknownCategory(cat, v.Config.Categories)
	}

	dst, err := newOutput(out, g.p.out)
	if err != nil {
		return err
	}
	defer dst.Abort()
	defer g.cleanups.add(dst.Abort)()

	name := in
	if in == "-" {
		name = "stdin"
	}
	if encrypt {
		key, err := k.ContentKey(cat)
		if err != nil {
			return err
		}
		// Sealing and writing overlap: ciphertext goes to the file from
		// a third goroutine (reading already runs ahead in copyCtx).
		aw := newAsyncWriter(dst)
		defer aw.Close()
		w, err := content.NewWriter(aw, key)
		if err != nil {
			return err
		}
		if err := copyCtx(ctx, w, src); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
	} else {
		var ring content.Keyring
		if cat != "" {
			ring, err = k.ContentKey(cat)
		} else {
			ring, err = k.Keyring()
		}
		if err != nil {
			return err
		}
		r, err := content.NewReader(src, ring, name)
		if err != nil {
			return err
		}
		if err := copyCtx(ctx, dst, r); err != nil {
			return err
		}
	}
	return dst.Commit()
}

// copyBuf is the copy chunk: the stream format's batch size, so each
// Write seals whole batches without buffering.
const copyBuf = 1 << 20

// copyCtx copies src to dst until EOF. Reading runs in its own goroutine,
// a few chunks ahead, so that reading (and decrypting, for file decrypt)
// overlaps with sealing and writing on a second core. Buffers are wiped
// at the end: they held plaintext.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) error {
	const nbuf = 3
	type chunk struct {
		b   []byte
		n   int
		err error
	}
	bufs := make([][]byte, nbuf)
	free := make(chan []byte, nbuf)
	full := make(chan chunk, nbuf)
	for i := range bufs {
		bufs[i] = make([]byte, copyBuf)
		free <- bufs[i]
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	defer func() {
		close(done)
		<-finished
		for _, b := range bufs {
			clear(b)
		}
	}()
	go func() {
		defer close(finished)
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
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return errInterrupted
		}
		c := <-full
		if c.n > 0 {
			if _, err := dst.Write(c.b[:c.n]); err != nil {
				return err
			}
		}
		switch c.err {
		case nil:
			free <- c.b
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return c.err
		}
	}
}

// asyncWriter writes copies of what it is given from its own goroutine,
// a few chunks behind. It holds ciphertext only. Close waits for the
// queue and returns the first write error; Write reports an earlier one.
type asyncWriter struct {
	w      io.Writer
	queue  chan []byte
	free   chan []byte
	done   chan struct{}
	mu     sync.Mutex
	err    error
	closed bool
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, queue: make(chan []byte, 2), free: make(chan []byte, 3), done: make(chan struct{})}
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

func (a *asyncWriter) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
	}
}

func (a *asyncWriter) Write(p []byte) (int, error) {
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

func (a *asyncWriter) Close() error {
	if !a.closed {
		a.closed = true
		close(a.queue)
		<-a.done
	}
	return a.firstErr()
}

func openInput(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, usagef(path + " is a directory")
	}
	return f, nil
}

// output writes to a temp file next to OUT and renames it into place on
// Commit, so OUT never exists half-written. Abort (deferred) removes the
// temp file unless Commit ran.
type output struct {
	w    io.Writer
	f    *os.File
	path string

	mu      sync.Mutex // Commit and Abort may race with a signal
	done    bool
	aborted bool
}

func newOutput(path string, stdout io.Writer) (*output, error) {
	if path == "-" {
		return &output{w: stdout}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".mysecure-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("failed to create output: %w", err)
	}
	return &output{w: f, f: f, path: path}, nil
}

func (o *output) Write(p []byte) (int, error) { return o.w.Write(p) }

func (o *output) Commit() error {
	if o.f == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.aborted {
		return errInterrupted
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	if err := os.Rename(o.f.Name(), o.path); err != nil {
		return fmt.Errorf("failed to write output: %w", err)
	}
	o.done = true
	return nil
}

func (o *output) Abort() {
	if o.f == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done || o.aborted {
		return
	}
	o.aborted = true
	o.f.Close()
	os.Remove(o.f.Name())
}
