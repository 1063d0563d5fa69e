package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/klauspost/compress/zstd"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/tree"
)

// VerifyResult is the outcome of verifying one backup.
type VerifyResult struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Bytes int64  `json:"plain_bytes"`
}

// dataReader is a backup's data file, decrypted and authenticated block
// by block as it is read.
type dataReader interface {
	io.Reader
	FileID() [content.FileIDSize]byte
	Close() error
}

// dataSource opens a backup's data file (in the local store or in an
// object store).
type dataSource func() (dataReader, error)

func treeSource(t *tree.Tree, dir string) dataSource {
	return func() (dataReader, error) {
		r, err := t.Open(path.Join(dir, dataName))
		if err != nil {
			return nil, err
		}
		return r, nil
	}
}

// openData opens a backup's data as a decompressed, decrypted plaintext
// stream, checking that it belongs to the manifest. The caller closes it.
func openData(src dataSource, m *Manifest) (io.Reader, func(), error) {
	r, err := src()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: data of %s: %v", ErrCorrupt, m.ID, err)
	}
	id := r.FileID()
	if hex.EncodeToString(id[:]) != m.DataFileID {
		r.Close()
		return nil, nil, fmt.Errorf("%w: the data file of %s is not the one its manifest names", ErrCorrupt, m.ID)
	}
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return dec, func() { dec.Close(); r.Close() }, nil
}

// check reads a backup's whole plaintext stream through sink and compares
// it with the manifest.
func check(ctx context.Context, src dataSource, m *Manifest, sink io.Writer) (int64, error) {
	r, closeFn, err := openData(src, m)
	if err != nil {
		return 0, err
	}
	defer closeFn()
	sum := sha256.New()
	var obs streamObserver
	if m.Type == Logical {
		obs = newDumpObserver()
	} else {
		obs = newXBObserver()
	}
	dst := io.MultiWriter(sum, obs)
	if sink != nil {
		dst = io.MultiWriter(sum, obs, sink)
	}
	n, err := io.CopyBuffer(dst, &ctxReader{ctx, r}, make([]byte, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		var we *sinkError
		if errors.As(err, &we) {
			return n, we.err
		}
		if errors.Is(err, content.ErrCorrupt) || errors.Is(err, zstd.ErrMagicMismatch) || isZstdError(err) {
			return n, fmt.Errorf("%w: %s: %v", ErrCorrupt, m.ID, err)
		}
		return n, fmt.Errorf("%w: %s: %v", ErrCorrupt, m.ID, err)
	}
	if n != m.PlainBytes {
		return n, fmt.Errorf("%w: %s has %d bytes of data, its manifest says %d", ErrCorrupt, m.ID, n, m.PlainBytes)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != m.PlainSHA256 {
		return n, fmt.Errorf("%w: %s: SHA-256 of the data does not match the manifest", ErrCorrupt, m.ID)
	}
	var probe Manifest
	if err := obs.finish(&probe); err != nil {
		return n, fmt.Errorf("%w: %s: %v", ErrCorrupt, m.ID, err)
	}
	return n, nil
}

func isZstdError(err error) bool {
	for _, e := range []error{zstd.ErrBlockTooSmall, zstd.ErrCRCMismatch, zstd.ErrMagicMismatch, zstd.ErrWindowSizeExceeded, zstd.ErrUnknownDictionary} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sinkError marks a failure of the consumer (a restore tool), not of the
// backup.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }

type sinkWriter struct{ w io.Writer }

func (s sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		return n, &sinkError{err}
	}
	return n, nil
}

// Verify decrypts, decompresses and checks one backup against its
// manifest (size, SHA-256, and the dump trailer or the xbstream
// structure).
func (s *Service) Verify(ctx context.Context, id string) (VerifyResult, error) {
	e, err := s.Get(id)
	if err != nil {
		return VerifyResult{ID: id, Error: err.Error()}, err
	}
	n, err := check(ctx, treeSource(s.Tree, path.Join(backupsDir, id)), &e.Manifest, nil)
	if err != nil {
		s.log().Error("backup verification failed", "id", id, "err", err)
		return VerifyResult{ID: id, Error: err.Error(), Bytes: n}, err
	}
	s.log().Info("backup verified", "id", id, "plain_bytes", n)
	return VerifyResult{ID: id, OK: true, Bytes: n}, nil
}

// VerifyAll verifies every backup of the catalog (and reports the ones
// whose manifest does not open). err is set when any failed.
func (s *Service) VerifyAll(ctx context.Context) ([]VerifyResult, error) {
	entries, broken, err := s.List()
	if err != nil {
		return nil, err
	}
	return verifyEach(ctx, entries, broken, s.Verify)
}

// verifyEach verifies entries one by one with verify (of a local or a
// remote catalog) and reports the broken ones too; err is set when any
// failed, or when ctx ends.
func verifyEach(ctx context.Context, entries []Entry, broken map[string]error, verify func(context.Context, string) (VerifyResult, error)) ([]VerifyResult, error) {
	var out []VerifyResult
	failed := 0
	for id, e := range broken {
		out = append(out, VerifyResult{ID: id, Error: e.Error()})
		failed++
	}
	for _, e := range entries {
		r, err := verify(ctx, e.ID)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if err != nil {
			failed++
		}
		out = append(out, r)
	}
	if failed > 0 {
		return out, fmt.Errorf("%w: %d of %d backups failed verification", ErrCorrupt, failed, len(out))
	}
	return out, nil
}
