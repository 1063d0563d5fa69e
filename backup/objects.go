package backup

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mysecure/mysecure/encfs/content"
)

// LocalTarget names the store itself among a backup's targets.
const LocalTarget = "local"

// ErrLocked: an object store's retention (object lock) forbids deleting a
// backup yet.
var ErrLocked = errors.New("held by a retention lock")

// ErrObjectStore: an object store could not be reached, refused the
// credentials, or has no such bucket.
var ErrObjectStore = errors.New("object store failed")

// ObjectStore is a place outside the store for backups, such as an S3
// bucket under a prefix. It sees only ciphertext in the store's file
// format: the same bytes as the local data and manifest files. Keys are
// relative to the target's prefix. Implementations must not print.
type ObjectStore interface {
	// String names the target for messages (s3://bucket/prefix).
	String() string
	// Upload starts a streamed upload of key: bytes go up in parts as
	// they are written, memory stays bounded, and nothing is visible
	// under key before Commit. Abort (or a crash) leaves nothing visible.
	Upload(ctx context.Context, key string) (ObjectWriter, error)
	// Put stores a small object.
	Put(ctx context.Context, key string, data []byte) error
	// Get reads an object.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes every version of key; it fails with ErrLocked while
	// a retention lock holds one.
	Delete(ctx context.Context, key string) error
	// LockedUntil is the latest retention date of key's current version
	// (zero: none).
	LockedUntil(ctx context.Context, key string) (time.Time, error)
	// Incomplete returns the keys of the uploads under prefix that were
	// started and never completed nor aborted.
	Incomplete(ctx context.Context, prefix string) ([]string, error)
	// AbortIncomplete aborts the incomplete uploads of key.
	AbortIncomplete(ctx context.Context, key string) error
}

// ObjectWriter is a streamed upload.
type ObjectWriter interface {
	io.Writer
	// Commit completes the upload; the object becomes visible.
	Commit() error
	// Abort cancels it and removes the parts uploaded so far.
	Abort()
}

func objectKey(id, name string) string { return path.Join("backups", id, name) }

// remoteCatalog is the catalog of one object store.
type remoteCatalog struct {
	s    *Service
	name string
	st   ObjectStore
	key  *content.Key
}

func (s *Service) remote(name string) (*remoteCatalog, error) {
	st, ok := s.Remotes[name]
	if !ok {
		var known []string
		for k := range s.Remotes {
			known = append(known, k)
		}
		sort.Strings(known)
		if len(known) == 0 {
			return nil, usageErr("no backup target %q: no object store is configured (backup-targets in the configuration)", name)
		}
		return nil, usageErr("no backup target %q (configured: local, %s)", name, strings.Join(known, ", "))
	}
	return &remoteCatalog{s: s, name: name, st: st, key: s.Tree.ContentKey()}, nil
}

// seal encrypts a small file in the store's file format.
func sealFile(key *content.Key, data []byte) ([]byte, [content.FileIDSize]byte, error) {
	var buf bytes.Buffer
	w, err := content.NewWriter(&buf, key)
	if err != nil {
		return nil, [content.FileIDSize]byte{}, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, [content.FileIDSize]byte{}, err
	}
	if err := w.Close(); err != nil {
		return nil, [content.FileIDSize]byte{}, err
	}
	return buf.Bytes(), w.Header().FileID, nil
}

func (r *remoteCatalog) manifest(ctx context.Context, id string) (*Manifest, error) {
	rc, err := r.st.Get(ctx, objectKey(id, manifestName))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cr, err := content.NewReader(rc, r.key, manifestName)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest of %s in %s: %v", ErrCorrupt, id, r.st, err)
	}
	b, err := io.ReadAll(io.LimitReader(cr, 16<<20))
	if err != nil {
		if errors.Is(err, content.ErrCorrupt) || errors.Is(err, content.ErrWrongKey) {
			return nil, fmt.Errorf("%w: manifest of %s in %s: %v", ErrCorrupt, id, r.st, err)
		}
		return nil, err
	}
	return parseManifest(b, id)
}

func (r *remoteCatalog) entry(m *Manifest) Entry {
	return Entry{Manifest: *m, StorePath: r.st.String() + "/" + objectKey(m.ID, "")}
}

// list returns the complete backups (those with a manifest), oldest
// first.
func (r *remoteCatalog) list(ctx context.Context) ([]Entry, map[string]error, error) {
	keys, err := r.st.List(ctx, "backups/")
	if err != nil {
		return nil, nil, err
	}
	broken := map[string]error{}
	var out []Entry
	for _, k := range keys {
		id, name, ok := splitObjectKey(k)
		if !ok || name != manifestName {
			continue
		}
		m, err := r.manifest(ctx, id)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				broken[id] = err
				continue
			}
			return nil, nil, err
		}
		out = append(out, r.entry(m))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out, broken, nil
}

func splitObjectKey(k string) (id, name string, ok bool) {
	parts := strings.Split(k, "/")
	if len(parts) != 3 || parts[0] != "backups" || !ValidID(parts[1]) {
		return "", "", false
	}
	return parts[1], parts[2], true
}

func (r *remoteCatalog) get(ctx context.Context, id string) (*Entry, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: no backup %q (IDs look like 20261128T103000Z-1a2b)", ErrNotFound, id)
	}
	m, err := r.manifest(ctx, id)
	if err != nil {
		return nil, err
	}
	e := r.entry(m)
	return &e, nil
}

// objectData is a backup's data object, decrypted as it is read.
type objectData struct {
	rc io.ReadCloser
	cr *content.Reader
}

func (d *objectData) Read(p []byte) (int, error) { return d.cr.Read(p) }
func (d *objectData) Close() error               { return d.rc.Close() }
func (d *objectData) FileID() [content.FileIDSize]byte {
	h, _ := d.cr.Header()
	return h.FileID
}

func (r *remoteCatalog) source(ctx context.Context, id string) dataSource {
	return func() (dataReader, error) {
		rc, err := r.st.Get(ctx, objectKey(id, dataName))
		if err != nil {
			return nil, err
		}
		cr, err := content.NewReader(rc, r.key, dataName)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &objectData{rc: rc, cr: cr}, nil
	}
}

// lockedUntil is when the retention lock of a backup ends (zero: none).
func (r *remoteCatalog) lockedUntil(ctx context.Context, id string) (time.Time, error) {
	var until time.Time
	for _, n := range []string{manifestName, dataName} {
		t, err := r.st.LockedUntil(ctx, objectKey(id, n))
		if err != nil {
			return time.Time{}, err
		}
		if t.After(until) {
			until = t
		}
	}
	return until, nil
}

// delete removes a backup: first its manifest (it leaves the catalog),
// then its data. A backup under a retention lock is refused before
// anything is removed.
func (r *remoteCatalog) delete(ctx context.Context, id string) error {
	if _, err := r.get(ctx, id); err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	until, err := r.lockedUntil(ctx, id)
	if err != nil {
		return err
	}
	if now := r.s.now(); until.After(now) {
		return fmt.Errorf("%w: backup %s in %s cannot be deleted before %s (object lock)", ErrLocked, id, r.st, until.UTC().Format(time.RFC3339))
	}
	for _, n := range []string{manifestName, dataName} {
		if err := r.st.Delete(ctx, objectKey(id, n)); err != nil {
			return fmt.Errorf("failed to delete %s from %s: %w", id, r.st, err)
		}
	}
	r.s.log().Info("backup deleted", "id", id, "target", r.name)
	return nil
}

// clean aborts the uploads that interrupted runs of this host left, and
// removes data objects whose run died before its manifest went up. A run
// still going holds its lock and is left alone. Several hosts must not
// share a prefix (docs/fleet.md): the locks are this host's.
func (r *remoteCatalog) clean(ctx context.Context) {
	log := r.s.log().With("target", r.name)
	inc, err := r.st.Incomplete(ctx, "backups/")
	if err != nil {
		log.Warn("failed to list incomplete uploads", "err", err)
	}
	for _, k := range inc {
		id, _, ok := splitObjectKey(k)
		if !ok {
			continue
		}
		l, err := r.s.tryLock("run-" + id)
		if err != nil {
			continue
		}
		if err := r.st.AbortIncomplete(ctx, k); err != nil {
			log.Warn("failed to abort an incomplete upload", "key", k, "err", err)
		} else {
			log.Info("aborted the upload of an interrupted backup", "id", id, "key", k)
		}
		l.remove = true
		l.release()
	}
	keys, err := r.st.List(ctx, "backups/")
	if err != nil {
		return
	}
	manifests := map[string]bool{}
	for _, k := range keys {
		if id, n, ok := splitObjectKey(k); ok && n == manifestName {
			manifests[id] = true
		}
	}
	for _, k := range keys {
		id, n, ok := splitObjectKey(k)
		if !ok || n != dataName || manifests[id] {
			continue
		}
		l, err := r.s.tryLock("run-" + id)
		if err != nil {
			continue
		}
		if until, err := r.st.LockedUntil(ctx, k); err == nil && until.After(r.s.now()) {
			log.Info("data of an interrupted backup stays until its retention lock ends (it is not in the catalog)", "id", id, "until", until)
		} else if err := r.st.Delete(ctx, k); err == nil {
			log.Info("removed the data of an interrupted backup", "id", id)
		}
		l.remove = true
		l.release()
	}
}

// verify checks one backup of the object store.
func (r *remoteCatalog) verify(ctx context.Context, id string) (VerifyResult, error) {
	e, err := r.get(ctx, id)
	if err != nil {
		return VerifyResult{ID: id, Error: err.Error()}, err
	}
	n, err := check(ctx, r.source(ctx, id), &e.Manifest, nil)
	if err != nil {
		r.s.log().Error("backup verification failed", "id", id, "target", r.name, "err", err)
		return VerifyResult{ID: id, Error: err.Error(), Bytes: n}, err
	}
	return VerifyResult{ID: id, OK: true, Bytes: n}, nil
}

// uploads is the set of a running backup's object-store uploads.
type uploads struct {
	cats []*remoteCatalog
	ws   []ObjectWriter
}

func (u *uploads) writer() io.Writer {
	if len(u.ws) == 0 {
		return nil
	}
	ws := make([]io.Writer, len(u.ws))
	for i, w := range u.ws {
		ws[i] = w
	}
	return io.MultiWriter(ws...)
}

func (u *uploads) abort() {
	for _, w := range u.ws {
		w.Abort()
	}
	u.ws = nil
}

func (u *uploads) commit() error {
	for i, w := range u.ws {
		if err := w.Commit(); err != nil {
			for _, rest := range u.ws[i+1:] {
				rest.Abort()
			}
			u.ws = nil
			return fmt.Errorf("%w: upload to %s: %v", ErrObjectStore, u.cats[i].st, err)
		}
	}
	return nil
}

// putManifest uploads the sealed manifest: the step that puts the backup
// in the object store's catalog.
func (u *uploads) putManifest(ctx context.Context, id string, mb []byte) error {
	for _, c := range u.cats {
		sealed, _, err := sealFile(c.key, mb)
		if err != nil {
			return err
		}
		if err := c.st.Put(ctx, objectKey(id, manifestName), sealed); err != nil {
			return fmt.Errorf("%w: manifest to %s: %v", ErrObjectStore, c.st, err)
		}
	}
	return nil
}

// removeData deletes the data objects of a backup that failed after its
// uploads completed (best effort; clean retries at the next run).
func (u *uploads) removeData(ctx context.Context, id string) {
	for _, c := range u.cats {
		c.st.Delete(ctx, objectKey(id, dataName))
	}
}

// streamFile is the data file of a backup with no local copy: the
// store's file format written only to the uploads.
type streamFile struct {
	cw *content.Writer
	n  int64
}

func (f *streamFile) Write(p []byte) (int, error) {
	n, err := f.cw.Write(p)
	f.n += int64(n)
	return n, err
}
func (f *streamFile) Commit() error     { return f.cw.Close() }
func (f *streamFile) Abort()            {}
func (f *streamFile) StoredSize() int64 { return content.CipherSize(f.n) }
func (f *streamFile) FileID() [content.FileIDSize]byte {
	return f.cw.Header().FileID
}

func fileIDHex(id [content.FileIDSize]byte) string { return hex.EncodeToString(id[:]) }
