package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	ID string `json:"id,omitempty"`
	// FromDir restores a backup directory copied out of a store (its
	// store form, as `backup show` names it) instead of one in the
	// catalog: offline restore on another machine.
	FromDir string `json:"from_dir,omitempty"`
	// From names the backup target that holds the backup ("" or "local":
	// the store; else an object store of Service.Remotes).
	From string `json:"from,omitempty"`
	// NoVerify skips the verification pass that runs before anything is
	// written.
	NoVerify bool `json:"no_verify,omitempty"`

	// Logical: credentials of the target server (default: the backup's).
	Credentials string `json:"credentials,omitempty"`
	// Logical: restore a one-database backup into this database instead.
	RenameTo string `json:"rename_to,omitempty"`

	// Physical: an empty or missing directory to extract and prepare into.
	Target string `json:"target,omitempty"`
	// Physical: copy the prepared files into this datadir (a stopped
	// server's, empty or missing), owned by Owner.
	CopyBack string `json:"copy_back,omitempty"`
	Owner    string `json:"owner,omitempty"` // default "mysql" when that user exists

	// Logical: restore into a server on another host, through an SSH
	// tunnel (docs/ssh.md).
	SSH *SSHOptions `json:"ssh,omitempty"`
}

// Absolute makes the paths of o (FromDir, Target, CopyBack) absolute
// against the caller's working directory: the daemon that runs the
// restore starts in /.
func (o *RestoreOptions) Absolute() error {
	for _, p := range []*string{&o.FromDir, &o.Target, &o.CopyBack} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	PlainBytes int64   `json:"plain_bytes"`
	Target     string  `json:"target,omitempty"`
	CopiedTo   string  `json:"copied_to,omitempty"`
	Database   string  `json:"database,omitempty"`
	Seconds    float64 `json:"seconds"`
}

// Restore restores one backup.
func (s *Service) Restore(ctx context.Context, o RestoreOptions, progress func(Progress)) (*RestoreResult, error) {
	src, m, err := s.restoreSource(ctx, o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if m.Type == Logical {
		// Before the verification pass: a restore that cannot finish
		// should say so at once, not after reading the whole backup.
		if err := s.checkRestoreLogical(ctx, m, o); err != nil {
			return nil, err
		}
	}
	if !o.NoVerify {
		if _, err := check(ctx, src, m, nil); err != nil {
			return nil, fmt.Errorf("nothing was restored: %w", err)
		}
	}
	res := &RestoreResult{ID: m.ID, Type: m.Type}
	report := func(n int64) {
		if progress != nil {
			progress(Progress{ID: m.ID, PlainBytes: n, Elapsed: time.Since(start)})
		}
	}
	if m.Type == Logical {
		err = s.restoreLogical(ctx, src, m, o, res, report)
	} else {
		err = s.restorePhysical(ctx, src, m, o, res, report)
	}
	if err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	s.log().Info("backup restored", "id", m.ID, "type", m.Type, "seconds", res.Seconds)
	return res, nil
}

func (s *Service) restoreSource(ctx context.Context, o RestoreOptions) (dataSource, *Manifest, error) {
	if o.From != "" && o.From != LocalTarget {
		if o.FromDir != "" {
			return nil, nil, usageErr("--from-dir and --from cannot be combined")
		}
		r, err := s.remote(o.From)
		if err != nil {
			return nil, nil, err
		}
		e, err := r.get(ctx, o.ID)
		if err != nil {
			return nil, nil, err
		}
		return r.source(ctx, o.ID), &e.Manifest, nil
	}
	if o.FromDir != "" {
		t := s.Tree.Rebase(o.FromDir)
		b, err := t.ReadFile(manifestName)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("%w: %s holds no backup (copy the directory that 'backup show' names, with its ms.diriv)", ErrNotFound, o.FromDir)
			}
			return nil, nil, fmt.Errorf("%w: manifest in %s: %v", ErrCorrupt, o.FromDir, err)
		}
		var probe struct {
			ID string `json:"id"`
		}
		json.Unmarshal(b, &probe)
		m, err := parseManifest(b, probe.ID)
		if err != nil {
			return nil, nil, err
		}
		return treeSource(t, ""), m, nil
	}
	e, err := s.Get(o.ID)
	if err != nil {
		return nil, nil, err
	}
	return treeSource(s.Tree, path.Join(backupsDir, o.ID)), &e.Manifest, nil
}

// checkRestoreLogical checks the options of a logical restore and that
// its credentials hold RestorePrivileges on every database it writes.
func (s *Service) checkRestoreLogical(ctx context.Context, m *Manifest, o RestoreOptions) error {
	if o.Target != "" || o.CopyBack != "" {
		return usageErr("--target and --copy-back are for physical backups")
	}
	dbs := m.Databases
	if o.RenameTo != "" {
		if len(m.Databases) != 1 {
			return usageErr("--rename-to needs a backup of exactly one database (this one has %d; make one with --databases)", len(m.Databases))
		}
		if !dbNameRE.MatchString(o.RenameTo) {
			return usageErr("database name %q is not valid", o.RenameTo)
		}
		dbs = []string{o.RenameTo}
	}
	credName := o.Credentials
	if credName == "" {
		credName = m.Credentials
	}
	cnf, err := s.credentials(credName)
	if err != nil {
		return err
	}
	defer clear(cnf)
	return s.checkPrivileges(ctx, "restore", cnf, dbs, RestorePrivileges)
}

func (s *Service) restoreLogical(ctx context.Context, src dataSource, m *Manifest, o RestoreOptions, res *RestoreResult, report func(int64)) error {
	if o.Target != "" || o.CopyBack != "" {
		return usageErr("--target and --copy-back are for physical backups")
	}
	if o.SSH != nil && o.SSH.RemoteDump {
		return usageErr("--remote-dump is for backups; a restore over SSH goes through the tunnel")
	}
	if err := o.SSH.validate(Logical); err != nil {
		return err
	}
	credName := o.Credentials
	if credName == "" {
		credName = m.Credentials
	}
	cnf, err := s.credentials(credName)
	if err != nil {
		return err
	}
	defer clear(cnf)
	client, err := s.Tools.client()
	if err != nil {
		return err
	}
	rc, err := s.connect(ctx, o.SSH)
	if err != nil {
		return err
	}
	defer rc.Close()
	args := rc.args
	var filter func(io.Writer) io.WriteCloser
	if o.RenameTo != "" {
		if len(m.Databases) != 1 {
			return usageErr("--rename-to needs a backup of exactly one database (this one has %d; make one with --databases)", len(m.Databases))
		}
		if !dbNameRE.MatchString(o.RenameTo) {
			return usageErr("database name %q is not valid", o.RenameTo)
		}
		from, to := m.Databases[0], o.RenameTo
		filter = func(w io.Writer) io.WriteCloser { return newRenameFilter(w, from, to) }
		res.Database = to
	}
	tc, err := s.Tools.newToolCmd(ctx, client, cnf, credPipe, args...)
	if err != nil {
		return err
	}
	stdin, err := tc.cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := tc.Start(); err != nil {
		return fmt.Errorf("failed to start %s: %w", tc.name, err)
	}
	var sink io.WriteCloser = stdin
	if filter != nil {
		sink = filter(stdin)
	}
	n, err := check(ctx, src, m, &progressWriter{w: sinkWriter{sink}, report: report})
	res.PlainBytes = n
	if err != nil {
		// Never let the client commit what follows a bad block.
		tc.cmd.Process.Kill()
		tc.Wait()
		var se *sinkError
		if errors.As(err, &se) || errors.Is(err, syscall.EPIPE) {
			if werr := tc.failure(errors.New("stopped reading")); werr != nil {
				return fmt.Errorf("the restore was stopped: %w", werr)
			}
		}
		return fmt.Errorf("the restore was stopped part way; the target may hold part of the data: %w", err)
	}
	if err := sink.Close(); err != nil {
		tc.cmd.Process.Kill()
		tc.Wait()
		return err
	}
	if filter != nil {
		stdin.Close()
	}
	if err := rc.explain(tc.Wait()); err != nil {
		return fmt.Errorf("the restore failed; the target may hold part of the data: %w", err)
	}
	return nil
}

type progressWriter struct {
	w      io.Writer
	n      int64
	last   time.Time
	report func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if time.Since(p.last) >= time.Second {
		p.last = time.Now()
		p.report(p.n)
	}
	return n, err
}

// renameFilter rewrites the statements of a one-database dump that name
// the database (CREATE DATABASE, USE, ALTER DATABASE) to another name.
// Object definitions that name the old database explicitly (a view over
// `old`.`t`) keep that name: see docs.
type renameFilter struct {
	w        io.Writer
	from, to []byte
	line     []byte // start of the current line, while it may still match
	midLine  bool   // inside a long line that already passed
}

func newRenameFilter(w io.Writer, from, to string) *renameFilter {
	q := func(s string) []byte { return []byte("`" + strings.ReplaceAll(s, "`", "``") + "`") }
	return &renameFilter{w: w, from: q(from), to: q(to)}
}

var renamePrefixes = [][]byte{[]byte("CREATE DATABASE "), []byte("USE "), []byte("ALTER DATABASE "), []byte("/*!50003 ALTER DATABASE "), []byte("-- Current Database: ")}

const renameMaxLine = 4096

func (f *renameFilter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if f.midLine {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				_, err := f.w.Write(p)
				return total, err
			}
			if _, err := f.w.Write(p[:i+1]); err != nil {
				return 0, err
			}
			p = p[i+1:]
			f.midLine = false
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.line = append(f.line, p...)
			if len(f.line) > renameMaxLine {
				if _, err := f.w.Write(f.line); err != nil {
					return 0, err
				}
				f.line = f.line[:0]
				f.midLine = true
			}
			return total, nil
		}
		f.line = append(f.line, p[:i+1]...)
		p = p[i+1:]
		if _, err := f.w.Write(f.rewrite(f.line)); err != nil {
			return 0, err
		}
		f.line = f.line[:0]
	}
	return total, nil
}

func (f *renameFilter) rewrite(line []byte) []byte {
	for _, pre := range renamePrefixes {
		if bytes.HasPrefix(line, pre) {
			return bytes.Replace(line, f.from, f.to, 1)
		}
	}
	return line
}

// Close flushes the last line and closes the underlying writer.
func (f *renameFilter) Close() error {
	if len(f.line) > 0 {
		if _, err := f.w.Write(f.rewrite(f.line)); err != nil {
			return err
		}
	}
	if c, ok := f.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// emptyOrMissing accepts a directory to restore into: missing, or empty,
// owned by root and not writable by others (a directory another user
// controls could see the plaintext or have symlinks swapped in).
func emptyOrMissing(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != uint32(os.Geteuid()) || fi.Mode().Perm()&0o022 != 0 {
		return usageErr("%s must be a missing directory, or an empty one owned by root and not writable by others", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s is not empty", ErrExists, dir)
	}
	return nil
}

func (s *Service) restorePhysical(ctx context.Context, src dataSource, m *Manifest, o RestoreOptions, res *RestoreResult, report func(int64)) error {
	if o.RenameTo != "" {
		return usageErr("--rename-to is for logical backups")
	}
	if o.SSH != nil {
		return usageErr("a physical backup is restored on the host whose datadir it fills: copy the backup there and restore with --from-dir")
	}
	if o.Target == "" {
		return usageErr("a physical restore needs --target DIR (an empty directory to extract and prepare into)")
	}
	target, err := filepath.Abs(o.Target)
	if err != nil {
		return err
	}
	if err := emptyOrMissing(target); err != nil {
		return err
	}
	var copyBack string
	if o.CopyBack != "" {
		if copyBack, err = filepath.Abs(o.CopyBack); err != nil {
			return err
		}
		if err := emptyOrMissing(copyBack); err != nil {
			return fmt.Errorf("%w (stop the server and move its datadir aside first)", err)
		}
	}
	mbstream, err := s.Tools.mbstream()
	if err != nil {
		return err
	}
	physical, err := s.Tools.physical()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	res.Target = target
	tl := &tail{max: 12}
	name, argv := withUmask("027", mbstream, []string{"-x", "-C", target})
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Stderr = tl
	cmd.Env = toolEnv("")
	// Its own process group: a failure names what the rules denied it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start %s: %w", mbstream, err)
	}
	n, err := check(ctx, src, m, &progressWriter{w: sinkWriter{stdin}, report: report})
	res.PlainBytes = n
	stdin.Close()
	werr := cmd.Wait()
	if err != nil {
		return fmt.Errorf("extraction into %s stopped part way: %w", target, err)
	}
	if werr != nil {
		return (&toolCmd{name: filepath.Base(mbstream), stderr: tl, cmd: cmd, denials: s.Tools.Denials, started: started}).failure(werr)
	}
	if err := s.Tools.runPlain(ctx, physical, "--prepare", "--target-dir="+target); err != nil {
		return fmt.Errorf("the files were extracted into %s but could not be prepared: %w", target, err)
	}
	if copyBack == "" {
		return nil
	}
	if err := s.Tools.runPlain(ctx, physical, "--copy-back", "--target-dir="+target, "--datadir="+copyBack); err != nil {
		return fmt.Errorf("copy-back into %s failed: %w", copyBack, err)
	}
	owner := o.Owner
	if owner == "" {
		if _, err := user.Lookup("mysql"); err == nil {
			owner = "mysql"
		}
	}
	if owner != "" {
		if err := chownTree(copyBack, owner); err != nil {
			return fmt.Errorf("copied into %s but could not give it to %s: %w", copyBack, owner, err)
		}
	}
	res.CopiedTo = copyBack
	return nil
}

// runPlain runs a tool that needs no credentials, in its own process
// group (a failure names what the access rules denied it).
func (t Tools) runPlain(ctx context.Context, tool string, args ...string) error {
	tl := &tail{max: 12}
	name, argv := withUmask("027", tool, args)
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Stderr = tl
	cmd.Stdout = tl
	cmd.Env = toolEnv("")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Run(); err != nil {
		return (&toolCmd{name: filepath.Base(tool), stderr: tl, cmd: cmd, denials: t.Denials, started: started}).failure(err)
	}
	return nil
}

func chownTree(dir, owner string) error {
	u, err := user.Lookup(owner)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
