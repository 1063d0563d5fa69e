package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/backup/xbstream"
	"github.com/mysecure/mysecure/encfs/content"
)

// Options are one backup's settings.
type Options struct {
	Type        string   `json:"type"`                  // Logical (default) or Physical
	Databases   []string `json:"databases,omitempty"`   // logical only; empty: all
	Credentials string   `json:"credentials,omitempty"` // default "default"
	Level       int      `json:"level,omitempty"`       // zstd level 1-22; 0: 3
	ExtraArgs   []string `json:"extra_args,omitempty"`  // added after the configured ones
	Job         string   `json:"job,omitempty"`         // the schedule that started it
	// SSH backs up a server on another host (docs/ssh.md).
	SSH *SSHOptions `json:"ssh,omitempty"`
	// Targets are where the backup goes: "local" (the store) and names
	// of Service.Remotes (object stores). Empty: local only.
	Targets []string `json:"targets,omitempty"`
}

// Progress is reported about once a second while a backup runs.
type Progress struct {
	ID          string        `json:"id"`
	PlainBytes  int64         `json:"plain_bytes"`
	StoredBytes int64         `json:"stored_bytes"`
	Elapsed     time.Duration `json:"elapsed_ns"`
}

// Rate is the plaintext read per second so far (0 before any time has
// passed).
func (p Progress) Rate() float64 {
	if el := p.Elapsed.Seconds(); el > 0 {
		return float64(p.PlainBytes) / el
	}
	return 0
}

var dbNameRE = regexp.MustCompile(`^[^/\\.\x00]{1,64}$`)

func (o *Options) normalize() error {
	switch o.Type {
	case "":
		o.Type = Logical
	case Logical, Physical:
	default:
		return usageErr("backup type %q: want logical or physical", o.Type)
	}
	if o.Type == Physical && len(o.Databases) > 0 {
		return usageErr("--databases applies to logical backups only")
	}
	for _, d := range o.Databases {
		if !dbNameRE.MatchString(d) || strings.HasPrefix(d, "-") {
			return usageErr("database name %q is not valid", d)
		}
	}
	if o.Credentials == "" {
		o.Credentials = DefaultCredentials
	}
	if o.Level == 0 {
		// klauspost's fastest level: on the benchmark's data it is both
		// faster and smaller than the zstd CLI's default -3
		// (docs/performance-backup.md).
		o.Level = 1
	}
	if o.Level < 1 || o.Level > 22 {
		return usageErr("compression level %d: want 1 to 22", o.Level)
	}
	if err := o.SSH.validate(o.Type); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range o.Targets {
		if t == "" || seen[t] {
			return usageErr("backup targets %q: each target once, none empty", strings.Join(o.Targets, ","))
		}
		seen[t] = true
	}
	for _, a := range o.ExtraArgs {
		if strings.HasPrefix(a, "--defaults") || strings.HasPrefix(a, "--password") || strings.HasPrefix(a, "-p") {
			return usageErr("extra argument %q: credentials come from the stored option file only", a)
		}
	}
	return nil
}

// Backup runs one backup to completion and returns its manifest. On any
// failure nothing is added to the catalog and the partial data is removed.
func (s *Service) Backup(ctx context.Context, opts Options, progress func(Progress)) (*Manifest, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	cnf, err := s.credentials(opts.Credentials)
	if err != nil {
		return nil, err
	}
	defer clear(cnf)
	rc, err := s.connect(ctx, opts.SSH)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var tool, version string
	if opts.Type == Logical {
		tool, version, err = s.findDump(ctx, rc)
	} else {
		tool, err = s.Tools.physical()
		version = toolVersion(ctx, tool)
	}
	if err != nil {
		return nil, err
	}
	server, err := s.serverInfo(ctx, rc, cnf)
	if err != nil {
		return nil, err
	}
	local, remotes, err := s.targets(opts.Targets)
	if err != nil {
		return nil, err
	}
	if err := s.Tree.MkdirAll(backupsDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to prepare the catalog: %w", err)
	}
	s.cleanPartials()
	for _, r := range remotes {
		r.clean(ctx)
	}

	start := s.now()
	m := &Manifest{
		FormatVersion: ManifestVersion, ID: newID(start), Type: opts.Type, Job: opts.Job,
		Credentials: opts.Credentials, Databases: opts.Databases, Server: *server,
		Started: start, Compression: "zstd", Level: opts.Level,
		Tool: ToolInfo{Name: path.Base(tool), Path: tool, Version: version}, Remote: rc.info,
	}
	if len(remotes) > 0 {
		if local {
			m.Targets = append(m.Targets, LocalTarget)
		}
		for _, r := range remotes {
			m.Targets = append(m.Targets, r.name)
		}
	}
	runLock, err := s.tryLock("run-" + m.ID)
	if err != nil {
		return nil, err
	}
	runLock.remove = true
	defer func() {
		runLock.release()
	}()
	partial := path.Join(backupsDir, partialPrefix+m.ID)
	if local {
		if err := s.Tree.MkdirAll(partial, 0o700); err != nil {
			return nil, err
		}
	}
	ok := false
	up := &uploads{}
	uploaded := false
	defer func() {
		if ok {
			return
		}
		if local {
			if err := s.Tree.RemoveAll(partial); err != nil {
				s.log().Error("failed to remove partial backup", "id", m.ID, "err", err)
			}
		}
		up.abort()
		if uploaded {
			up.removeData(context.WithoutCancel(ctx), m.ID)
		}
	}()
	log := s.log().With("id", m.ID, "type", m.Type)
	log.Info("backup started", "tool", m.Tool.Path, "server", server.Version)

	args := append([]string(nil), rc.args...)
	mode := credPipe
	if opts.Type == Logical {
		args = append(args, "--single-transaction", "--routines", "--events", "--triggers", "--hex-blob")
		if server.LogBin {
			args = append(args, "--master-data=2")
			if strings.Contains(strings.ToLower(server.Version), "mariadb") {
				args = append(args, "--gtid")
			}
		}
		args = append(args, s.Tools.DumpArgs...)
		args = append(args, opts.ExtraArgs...)
		if len(opts.Databases) > 0 {
			args = append(args, "--databases")
			args = append(args, opts.Databases...)
		} else {
			args = append(args, "--all-databases")
		}
	} else {
		mode = credFIFO
		args = append(args, "--backup", "--stream=xbstream")
		args = append(args, s.Tools.PhysicalArgs...)
		args = append(args, opts.ExtraArgs...)
	}
	m.Tool.Args = args

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tc, stdout, err := s.prepareTool(runCtx, rc, tool, cnf, mode, args)
	if err != nil {
		return nil, err
	}
	for _, r := range remotes {
		ow, err := r.st.Upload(ctx, objectKey(m.ID, dataName))
		if err != nil {
			cancel()
			tc.Wait()
			return nil, fmt.Errorf("%w: %s: %v", ErrObjectStore, r.st, err)
		}
		up.cats = append(up.cats, r)
		up.ws = append(up.ws, ow)
	}
	var w dataFile
	if local {
		tw, err := s.Tree.CreateTee(path.Join(partial, dataName), 0o600, up.writer())
		if err != nil {
			cancel()
			tc.Wait()
			return nil, err
		}
		w = tw
	} else {
		cw, err := content.NewWriter(up.writer(), s.Tree.ContentKey())
		if err != nil {
			cancel()
			tc.Wait()
			return nil, storeError(err)
		}
		w = &streamFile{cw: cw}
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	if err := tc.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", m.Tool.Name, err)
	}

	// A 1 MiB pipe: with the default 64 KiB the tool stalls whenever this
	// process is busy compressing (docs/performance-backup.md).
	if sc, ok := stdout.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
		}
	}
	counter := &countWriter{w: w}
	enc, err := newParallelZstd(counter, opts.Level, compressWorkers())
	if err != nil {
		cancel()
		tc.Wait()
		return nil, err
	}
	sum := sha256.New()
	var obs streamObserver
	if opts.Type == Logical {
		obs = newDumpObserver()
	} else {
		obs = newXBObserver()
	}
	copyErr := s.pump(runCtx, stdout, enc, sum, obs, func(n int64) {
		if progress != nil {
			progress(Progress{ID: m.ID, PlainBytes: n, StoredBytes: counter.n, Elapsed: time.Since(start)})
		}
	}, &m.PlainBytes)
	if copyErr != nil {
		// The tool may be blocked writing to us: stop it.
		cancel()
	}
	waitErr := rc.explain(tc.Wait())
	closeErr := enc.Close()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("backup interrupted: %w", ctx.Err())
	case copyErr != nil:
		return nil, storeError(copyErr)
	case waitErr != nil:
		var te *ToolError
		if errors.As(waitErr, &te) && te.AccessDenied {
			return nil, fmt.Errorf("the server refused the credentials %q: %w", opts.Credentials, waitErr)
		}
		return nil, waitErr
	case closeErr != nil:
		return nil, storeError(closeErr)
	}
	m.ExitStatus = 0
	if err := w.Commit(); err != nil {
		return nil, storeError(err)
	}
	committed = true
	if err := up.commit(); err != nil {
		return nil, err
	}
	uploaded = true
	m.PackedBytes = counter.n
	m.StoredBytes = w.StoredSize()
	m.PlainSHA256 = hex.EncodeToString(sum.Sum(nil))
	id := w.FileID()
	m.DataFileID = fileIDHex(id)
	if err := obs.finish(m); err != nil {
		return nil, &ToolError{Tool: m.Tool.Name, Status: "exit status 0, but " + err.Error(), Stderr: tc.Lines()}
	}
	m.Finished = s.now()
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if local {
		if err := s.Tree.WriteFile(path.Join(partial, manifestName), mb, 0o600); err != nil {
			return nil, storeError(err)
		}
	}
	// The manifest makes it part of an object store's catalog.
	if err := up.putManifest(ctx, m.ID, mb); err != nil {
		return nil, err
	}
	// The one step that makes it part of the local catalog.
	if local {
		if err := s.Tree.Rename(partial, path.Join(backupsDir, m.ID)); err != nil {
			return nil, storeError(err)
		}
	}
	ok = true
	log.Info("backup complete", "plain_bytes", m.PlainBytes, "stored_bytes", m.StoredBytes, "seconds", m.Duration().Seconds())
	return m, nil
}

// dataFile is where a backup's data goes: a store file (teeing its
// ciphertext to the uploads), or the uploads alone.
type dataFile interface {
	io.Writer
	Commit() error
	Abort()
	StoredSize() int64
	FileID() [content.FileIDSize]byte
}

// targets splits a backup's targets into the store and object stores.
func (s *Service) targets(names []string) (local bool, remotes []*remoteCatalog, err error) {
	if len(names) == 0 {
		return true, nil, nil
	}
	for _, n := range names {
		if n == LocalTarget {
			local = true
			continue
		}
		r, err := s.remote(n)
		if err != nil {
			return false, nil, err
		}
		remotes = append(remotes, r)
	}
	return local, remotes, nil
}

func storeError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("the store's filesystem is full; the partial backup was removed: %w", err)
	}
	return fmt.Errorf("failed to write the backup: %w", err)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pump copies the tool's output through the hash, the observer and the
// compressor, reporting progress about once a second.
func (s *Service) pump(ctx context.Context, r io.Reader, w io.Writer, sum hash.Hash, obs io.Writer, report func(int64), total *int64) error {
	buf := make([]byte, 1<<20)
	last := time.Now()
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			p := buf[:n]
			sum.Write(p)
			obs.Write(p)
			if _, err := w.Write(p); err != nil {
				return err
			}
			*total += int64(n)
			if time.Since(last) >= time.Second {
				last = time.Now()
				report(*total)
			}
		}
		if rerr == io.EOF {
			report(*total)
			return nil
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil // reported by the caller
			}
			return fmt.Errorf("failed to read the tool's output: %w", rerr)
		}
	}
}

// streamObserver watches the plaintext stream for what the manifest
// records and for completeness.
type streamObserver interface {
	io.Writer
	finish(m *Manifest) error
}

// dumpObserver keeps the head and the tail of a logical dump.
type dumpObserver struct {
	head []byte
	tail []byte
}

const dumpHeadSize = 64 << 10
const dumpTailSize = 4 << 10

func newDumpObserver() *dumpObserver { return &dumpObserver{} }

func (d *dumpObserver) Write(p []byte) (int, error) {
	if room := dumpHeadSize - len(d.head); room > 0 {
		d.head = append(d.head, p[:min(room, len(p))]...)
	}
	if len(p) >= dumpTailSize {
		d.tail = append(d.tail[:0], p[len(p)-dumpTailSize:]...)
	} else {
		d.tail = append(d.tail, p...)
		if len(d.tail) > dumpTailSize {
			d.tail = append(d.tail[:0], d.tail[len(d.tail)-dumpTailSize:]...)
		}
	}
	return len(p), nil
}

var (
	changeMasterRE = regexp.MustCompile(`(?m)^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=([0-9]+);`)
	gtidRE         = regexp.MustCompile(`(?m)^-- SET GLOBAL gtid_slave_pos='([^']*)';`)
)

// dumpTrailer finds the completion line of a dump in its last bytes.
func dumpTrailer(tail []byte) (string, bool) {
	t := bytes.TrimRight(tail, "\n")
	i := bytes.LastIndexByte(t, '\n')
	last := string(t[i+1:])
	if strings.HasPrefix(last, "-- Dump completed") {
		return last, true
	}
	return "", false
}

func (d *dumpObserver) finish(m *Manifest) error {
	tr, ok := dumpTrailer(d.tail)
	if !ok {
		return errors.New("the dump has no '-- Dump completed' trailer")
	}
	m.Trailer = tr
	if mm := changeMasterRE.FindSubmatch(d.head); mm != nil {
		pos, _ := strconv.ParseUint(string(mm[2]), 10, 64)
		m.Binlog = &Binlog{File: string(mm[1]), Position: pos}
	}
	// MariaDB prints the GTID position near the end of the dump.
	mm := gtidRE.FindSubmatch(d.tail)
	if mm == nil {
		mm = gtidRE.FindSubmatch(d.head)
	}
	if mm != nil {
		if m.Binlog == nil {
			m.Binlog = &Binlog{}
		}
		m.Binlog.GTID = string(mm[1])
	}
	return nil
}

// serverInfo asks the server about itself with the backup's credentials:
// it fails early, with the server's own message, on wrong credentials.
func (s *Service) serverInfo(ctx context.Context, rc *remoteConn, cnf []byte) (*ServerInfo, error) {
	rows, err := s.query(ctx, rc, cnf, "SELECT @@version, @@log_bin, @@hostname;")
	if err != nil {
		var te *ToolError
		if errors.As(err, &te) && te.AccessDenied {
			return nil, fmt.Errorf("the server refused the backup credentials: %w", err)
		}
		return nil, fmt.Errorf("failed to connect to the server: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return nil, fmt.Errorf("unexpected answer from the server: %d rows", len(rows))
	}
	return &ServerInfo{Version: rows[0][0], LogBin: rows[0][1] == "1", Hostname: rows[0][2]}, nil
}

// xbObserver checks a physical backup's xbstream as it passes.
type xbObserver struct{ *xbstream.Observer }

// newXBObserver captures the binlog position and requires the files
// mariabackup writes first and last (a stream cut between two files is
// otherwise well-formed).
func newXBObserver() xbObserver {
	return xbObserver{xbstream.New(xbstream.Options{
		MaxCapture: 64 << 10,
		Capture:    []string{"xtrabackup_binlog_info", "xtrabackup_checkpoints"},
		Require:    []string{"xtrabackup_checkpoints", "xtrabackup_info"},
	})}
}

func (x xbObserver) finish(m *Manifest) error {
	if err := x.Close(); err != nil {
		return err
	}
	st := x.Stats()
	m.Stream = &StreamInfo{Files: int(st.Files), Chunks: st.Chunks}
	if b, ok := x.Captured("xtrabackup_binlog_info"); ok {
		if file, pos, gtid, err := xbstream.ParseBinlogInfo(b); err == nil {
			m.Binlog = &Binlog{File: file, Position: pos, GTID: gtid}
		}
	}
	if _, ok := x.Captured("xtrabackup_checkpoints"); !ok {
		return errors.New("the stream has no xtrabackup_checkpoints")
	}
	return nil
}

// Validate checks the options as Backup would, without running anything.
func (o Options) Validate() error {
	c := o
	return c.normalize()
}
