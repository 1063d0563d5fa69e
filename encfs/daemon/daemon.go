// Package daemon is the mysecure mount daemon: it holds the unlocked
// volume keys, serves the FUSE mount (encfs/fusefs), decides every open
// and namespace change with the access rules (encfs/acl), writes the
// audit log and keeps the recent denials, and answers the control API on
// a root-owned unix socket: status, rules, mode, categories, move sessions
// (the mover itself, encfs/admin, runs in the caller's process and moves
// data through the mount) and the jobs of a module it is given (backups,
// also on a second socket for the backup group). Errors cross the socket
// as codes that the client turns back into the same sentinels (errors.go).
//
// It is the only long-running process that holds keys (offline commands
// and 'backup --local' unlock the volume for their own run). It must not
// print (it logs through the slog.Logger it is given) and must not know
// about MySQL: a job is opaque JSON to it.
package daemon

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/fusefs"
	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/dirs"
	"github.com/mysecure/mysecure/internal/fds"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Mode is how access decisions are applied.
type Mode string

const (
	// Enforcing denies what no rule allows (the default).
	Enforcing Mode = "enforcing"
	// Permissive logs what would be denied and allows it.
	Permissive Mode = "permissive"
	// Admin allows everything, logs what would be denied, and lets rules
	// and mode be changed without the master credential, for a
	// maintenance window. Entering it needs the credential.
	Admin Mode = "admin"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Enforcing, Permissive, Admin:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want enforcing, permissive or admin", s)
}

// Config is what a daemon needs to run.
type Config struct {
	Store       string // store dir (holds mysecure.conf)
	Mount       string // mount point
	Socket      string // control socket path
	AuditLog    string // access log path
	AuditAllows bool   // also log allowed opens
	Logger      *slog.Logger

	// Jobs runs module operations (backups) asked for on POST /v1/jobs.
	Jobs Jobs
	// JobSocket, when set with BackupGroup, is a second socket (mode
	// 0660, group BackupGroup) on which members of that group may run
	// the jobs Jobs admits for them.
	JobSocket   string
	BackupGroup string

	// Rollback, when set, holds the last rule file generation seen on
	// this host: an older rules.json is refused (New fails; a reload
	// denies every open) and every save records its generation. Nil
	// turns the check off (tests, benchmarks).
	Rollback *rollback.Dir
}

// File names inside the store, besides categories (which cannot contain
// a dot) and mysecure.conf.
const (
	RulesFile  = "rules.json"
	JournalDir = "ms.journal"
)

// Daemon is a running mount.
type Daemon struct {
	cfg Config
	log *slog.Logger
	// vol is the config as read at start: its volume ID and store dir.
	// The categories served now are d.fsys.Categories() (they change
	// with 'category add/remove').
	vol    *volume.Volume
	keys   *volume.Keys
	fsys   *fusefs.FS
	srv    *fuse.Server
	ident  *acl.Identifier
	engine *acl.Engine
	audit  *auditLog

	mode    atomic.Value // Mode
	started time.Time
	pid     int

	denials atomic.Uint64
	allows  atomic.Uint64
	denied  denialRing   // the most recent denials, for status and failed jobs
	jobs    jobGate      // running jobs: Close waits for them before wiping the keys
	denyAll atomic.Value // string: why every open is denied ("" if not)

	mountDev     string      // "major:minor" of the mount, as in mountinfo
	unmountAsked atomic.Bool // Unmount was called (the control API, a signal)
	detached     atomic.Bool // the alarm for an unmount from outside was raised
	served       chan struct{}

	adminMu sync.Mutex // serializes rule and mode changes

	moversMu sync.Mutex
	movers   map[int]uint64 // pid -> start time of processes in a move session

	jobCtx context.Context // jobs run on the control server's context

	tokenMu sync.Mutex
	tokens  [][]byte // one-time recovery tokens
}

// New unlocks nothing itself: it takes keys already unlocked from vol.
func New(cfg Config, vol *volume.Volume, keys *volume.Keys) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, vol: vol, keys: keys, started: time.Now(), pid: os.Getpid(), movers: map[int]uint64{}}
	if err := volume.MemoryLockError(); err != nil {
		// Fail soft: the daemon runs, its master key may reach swap.
		d.log.Warn("master key memory not locked", "error", err.Error())
	}
	// Always start enforcing: the mode is not persisted, so nothing on
	// disk can weaken a freshly started daemon.
	d.mode.Store(Enforcing)

	ck, err := MountKeys(vol, keys)
	if err != nil {
		return nil, err
	}
	fsys, err := fusefs.New(fusefs.Options{Store: cfg.Store, Keys: ck, Auth: d, OnRepair: d.repaired})
	if err != nil {
		return nil, err
	}
	d.fsys = fsys
	d.ident = acl.NewIdentifier(acl.IdentifierOptions{
		HashInMount: func(path string, st *unix.Stat_t) (string, bool, error) { return fsys.HashPlain(cfg.Mount, path, st) },
	})
	d.engine = acl.NewEngine(d.ident)
	if err := d.loadRules(true); err != nil {
		return nil, err
	}
	audit, err := openAuditLog(cfg.AuditLog, 10<<20, 5)
	if err != nil {
		return nil, err
	}
	d.audit = audit
	return d, nil
}

func (d *Daemon) rulesPath() string { return filepath.Join(d.cfg.Store, RulesFile) }

// LoadRules reads the rule file of the volume in store, authenticated
// with its rules key (offline: category remove, key accept-rollback). An
// error names the file.
func LoadRules(store string, k *volume.Keys) (*acl.RuleSet, error) {
	key, err := k.Subkey(volume.PurposeRules, "")
	if err != nil {
		return nil, err
	}
	defer clear(key)
	p := filepath.Join(store, RulesFile)
	rs, err := acl.LoadRules(p, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return rs, nil
}

func (d *Daemon) rulesKey() ([]byte, error) { return d.keys.Subkey(volume.PurposeRules, "") }

// loadRules reads the rule file. A tampered or corrupt file makes the
// engine deny everything, and says why in the log and in status. A file
// older than the last one seen (rollback) is an error when atStart (the
// mount is refused), and deny-all on a reload.
func (d *Daemon) loadRules(atStart bool) error {
	key, err := d.rulesKey()
	if err != nil {
		return err
	}
	defer clear(key)
	rs, err := acl.LoadRules(d.rulesPath(), key)
	if err == nil && d.cfg.Rollback != nil {
		err = d.cfg.Rollback.Observe(d.vol.Config.VolumeID, d.rulesPath(), rs.Generation)
		if err != nil && atStart {
			return err
		}
	}
	if err != nil {
		reason := fmt.Sprintf("rule file %s refused: %v; denying every open until the rules are restored or re-added", d.rulesPath(), err)
		d.log.Error("rules tampered: deny all", "error", err.Error(), "file", d.rulesPath())
		d.engine.DenyAll(reason)
		d.denyAll.Store(reason)
		return nil
	}
	d.setRules(rs)
	return nil
}

func (d *Daemon) setRules(rs *acl.RuleSet) {
	d.engine.SetRules(rs)
	d.denyAll.Store("")
}

func (d *Daemon) denyAllReason() string {
	s, _ := d.denyAll.Load().(string)
	return s
}

// Mount mounts the FUSE filesystem, first clearing a stale mount left by a
// killed daemon (its mount point answers ENOTCONN).
func (d *Daemon) Mount() error {
	if isMountPoint(d.cfg.Mount) {
		// A daemon killed a moment ago may still be exiting: give its
		// mount a moment to turn into a dead one (ENOTCONN).
		var err error
		for i := 0; i < 100; i++ {
			var st syscall.Stat_t
			if err = syscall.Stat(d.cfg.Mount, &st); errors.Is(err, syscall.ENOTCONN) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("%w: %s is already mounted", ErrAlreadyMounted, d.cfg.Mount)
		}
		d.log.Warn("clearing stale mount left by a stopped daemon", "mount", d.cfg.Mount)
		// Processes blocked on the dead connection (even a killed daemon
		// stuck on its own mount) are released by aborting it.
		abortConnection(d.cfg.Mount)
		if err := syscall.Unmount(d.cfg.Mount, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("failed to clear stale mount %s: %w", d.cfg.Mount, err)
		}
	}
	if err := dirs.MkdirAll(d.cfg.Mount, 0o755, 0o755); err != nil {
		return fmt.Errorf("failed to create mount point: %w", err)
	}
	srv, err := d.fsys.Mount(d.cfg.Mount)
	if err != nil {
		return fmt.Errorf("failed to mount %s: %w", d.cfg.Mount, err)
	}
	// go-fuse opens /dev/fuse without close-on-exec: every program the
	// daemon starts (backup tools, the recovery child) would hold the
	// connection and could answer the kernel in the daemon's place.
	marked, err := fds.CloseOnExecAll()
	if err != nil {
		srv.Unmount()
		return fmt.Errorf("failed to keep the daemon's descriptors from its children: %w", err)
	}
	d.log.Debug("descriptors marked close-on-exec after mount", "fds", marked)
	d.srv = srv
	var st syscall.Stat_t
	if err := syscall.Stat(d.cfg.Mount, &st); err == nil {
		d.mountDev = fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	d.served = make(chan struct{})
	go d.watchMount(time.Second)
	d.log.Info("mounted", "store", d.cfg.Store, "mount", d.cfg.Mount, "mode", string(d.Mode()))
	return nil
}

// ReloadRules re-reads the rule file (SIGHUP): a file restored from a
// backup takes effect without a remount; a tampered one means deny-all.
func (d *Daemon) ReloadRules() error {
	d.adminMu.Lock()
	defer d.adminMu.Unlock()
	return d.loadRules(false)
}

// MountKeys derives the FUSE frontend's keys from an unlocked volume: the
// content key and the names cipher of each category.
func MountKeys(vol *volume.Volume, keys *volume.Keys) (map[string]fusefs.CategoryKeys, error) {
	ck := map[string]fusefs.CategoryKeys{}
	for _, cat := range vol.Config.Categories {
		c, err := keys.ContentKey(cat)
		if err != nil {
			return nil, err
		}
		nc, err := keys.NamesCipher(cat)
		if err != nil {
			return nil, err
		}
		ck[cat] = fusefs.CategoryKeys{Content: c, Names: nc}
	}
	return ck, nil
}

// ErrAlreadyMounted: the mount point already has a live mount.
var ErrAlreadyMounted = errors.New("already mounted")

// isMountPoint reports whether dir is listed in /proc/self/mountinfo.
func isMountPoint(dir string) bool {
	mounts, err := procfs.Mounts()
	if err != nil {
		return false
	}
	_, ok := procfs.MountAt(mounts, dir)
	return ok
}

// abortConnection aborts the FUSE connection of the mount at dir through
// the fusectl filesystem (mounted on demand).
func abortConnection(dir string) {
	dev := mountDevice(dir)
	if dev == "" {
		return
	}
	const ctl = "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(ctl, dev)); err != nil {
		_ = syscall.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	_ = os.WriteFile(filepath.Join(ctl, dev, "abort"), []byte("1"), 0o200)
}

// mountDevice returns the minor device number of the mount at dir (the
// fusectl connection name), from /proc/self/mountinfo.
func mountDevice(dir string) string {
	mounts, err := procfs.Mounts()
	if err != nil {
		return ""
	}
	clean := filepath.Clean(dir)
	for _, m := range mounts {
		if m.Point == clean {
			if _, minor, ok := strings.Cut(m.Dev, ":"); ok {
				return minor
			}
		}
	}
	return ""
}

// ErrDetached: the mount was unmounted from outside the daemon (umount -l,
// fusermount3 -u -z), not through Unmount.
var ErrDetached = errors.New("mount point detached while serving (lazy unmount?)")

// Wait blocks until the mount is gone. It returns nil after Unmount (the
// control API, a signal) and ErrDetached when the mount was unmounted from
// outside, which it also records as an alarm.
func (d *Daemon) Wait() error {
	d.srv.Wait()
	close(d.served)
	if d.unmountAsked.Load() {
		return nil
	}
	d.alarmDetached()
	return fmt.Errorf("%w: %s", ErrDetached, d.cfg.Mount)
}

// watchMount raises the detach alarm as soon as the mount leaves the
// mount table while the daemon still serves: after a lazy unmount, open
// files keep the FUSE connection (and Wait) alive, possibly for long.
func (d *Daemon) watchMount(every time.Duration) {
	if d.mountDev == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.served:
			return
		case <-t.C:
		}
		if d.unmountAsked.Load() {
			continue
		}
		if ok, err := mountedAt(d.cfg.Mount, d.mountDev); err == nil && !ok && !d.unmountAsked.Load() {
			d.alarmDetached()
			return
		}
	}
}

// alarmDetached logs, once, that the mount was unmounted from outside:
// in the daemon log at error level and in the audit log.
func (d *Daemon) alarmDetached() {
	if d.detached.Swap(true) {
		return
	}
	msg := ErrDetached.Error()
	d.log.Error(msg, "mount", d.cfg.Mount, "alarm", true)
	d.writeAudit(AuditRecord{Time: time.Now().UTC(), Decision: "alarm", Mode: string(d.Mode()),
		Pid: d.pid, File: d.cfg.Mount, Reason: msg + ": unmounted outside mysecure; processes that still hold files on it keep them"})
}

// repaired records a torn file end the mount cut (fusefs.Repair) in the
// daemon log and the audit log: data that a killed daemon had not finished
// writing is gone, and so is anything a writer of the store cut.
func (d *Daemon) repaired(r fusefs.Repair) {
	msg := "torn end of a file cut on open (daemon killed while writing it?)"
	d.log.Warn(msg, "category", r.Category, "file", r.Path, "repair", r.TailRepair.String())
	if d.audit == nil {
		return
	}
	d.writeAudit(AuditRecord{Time: time.Now().UTC(), Decision: "repair", Mode: string(d.Mode()),
		Pid: d.pid, File: r.Path, Category: r.Category, Reason: msg + ": " + r.TailRepair.String()})
}

// mountedAt reports whether mountinfo lists a mount of device dev
// ("major:minor") at dir.
func mountedAt(dir, dev string) (bool, error) {
	mounts, err := procfs.Mounts()
	if err != nil {
		return false, err
	}
	clean := filepath.Clean(dir)
	for _, m := range mounts {
		if m.Dev == dev && m.Point == clean {
			return true, nil
		}
	}
	return false, nil
}

// Unmount unmounts; it fails while files are open on the mount.
func (d *Daemon) Unmount() error {
	d.unmountAsked.Store(true)
	if err := d.srv.Unmount(); err != nil {
		d.unmountAsked.Store(false)
		return fmt.Errorf("failed to unmount %s (files still open?): %w", d.cfg.Mount, err)
	}
	return nil
}

// Close waits for running jobs (cancelled when the control server's
// context ended, they remove what they left half done), then releases the
// keys and the audit log.
func (d *Daemon) Close() {
	d.jobs.closeAndWait()
	d.audit.Close()
	d.keys.Wipe()
}

// Mode returns the current mode.
func (d *Daemon) Mode() Mode { return d.mode.Load().(Mode) }

// isMover reports whether the thread tid belongs to a process in a move
// session (same pid and start time as when the session began).
func (d *Daemon) isMover(tid int) bool {
	d.moversMu.Lock()
	n := len(d.movers)
	d.moversMu.Unlock()
	if n == 0 {
		return false
	}
	pid, err := tgid(tid)
	if err != nil {
		return false
	}
	d.moversMu.Lock()
	start, ok := d.movers[pid]
	d.moversMu.Unlock()
	if !ok {
		return false
	}
	now, err := procStart(pid)
	return err == nil && now == start
}

// Authorize implements fusefs.Authorizer.
func (d *Daemon) Authorize(ctx context.Context, req fusefs.AccessRequest) syscall.Errno {
	// The daemon never opens files on its own mount (a FUSE server that
	// does cannot exit when killed), so it needs no exemption; movers
	// (encrypt/decrypt, recovery) have a session.
	if d.isMover(req.Pid) {
		return 0
	}
	dec := d.engine.Decide(acl.Request{Pid: req.Pid, Uid: req.Uid, Category: req.Category, Path: req.Path})
	mode := d.Mode()
	if dec.Allowed {
		d.allows.Add(1)
		if !d.cfg.AuditAllows {
			return 0
		}
	} else {
		d.denials.Add(1)
	}
	rec := AuditRecord{
		Time: time.Now().UTC(), Mode: string(mode), Pid: req.Pid, Uid: req.Uid,
		File:     filepath.Join(d.cfg.Mount, req.Category, req.Path),
		Category: req.Category, Reason: dec.Reason,
	}
	if dec.Process != nil {
		rec.Exe, rec.SHA256 = dec.Process.Exe.Path, dec.Process.Exe.SHA256
	}
	if dec.Rule != nil {
		rec.Rule = dec.Rule.String()
	}
	if dec.Allowed {
		rec.Decision = "allow"
		d.writeAudit(rec)
		return 0
	}
	if mode != Enforcing {
		rec.Decision = "would-deny"
		d.writeAudit(rec)
		d.recordDenial(req.Pid, rec)
		return 0
	}
	rec.Decision = "deny"
	d.writeAudit(rec)
	d.recordDenial(req.Pid, rec)
	return syscall.EACCES
}

func (d *Daemon) writeAudit(r AuditRecord) {
	if err := d.audit.Write(r); err != nil {
		d.log.Error("audit log write failed", "error", err.Error())
	}
}

// Status is what `mysecure status` shows.
type Status struct {
	Mounted     bool     `json:"mounted"`
	Store       string   `json:"store"`
	Mount       string   `json:"mount"`
	Mode        Mode     `json:"mode"`
	Pid         int      `json:"pid"`
	Started     string   `json:"started"`
	VolumeID    string   `json:"volume_id"`
	Categories  []string `json:"categories"`
	Rules       int      `json:"rules"`
	DenyAll     string   `json:"deny_all,omitempty"`
	Denials     uint64   `json:"denials"`
	Allows      uint64   `json:"allows"`
	Opens       uint64   `json:"opens"`
	Hashes      uint64   `json:"binaries_hashed"`
	AuditLog    string   `json:"audit_log"`
	RulesLoaded bool     `json:"rules_loaded"`
	// Warnings are weaknesses of the running setup (ALLOW rules without
	// --user on programs local users can run).
	Warnings []Warning `json:"warnings"`
	// RecentDenials groups the last denials (at most
	// statusDenials) by program, newest first, each with the rule that
	// would allow it.
	RecentDenials []DenialGroup `json:"recent_denials"`
	// Goroutines is the daemon's goroutine count (runtime.NumGoroutine):
	// the stress tests sample it to see that nothing leaks per request.
	Goroutines int `json:"goroutines,omitempty"`
	// SlotKeys: the daemon takes a passphrase slot's key as the master
	// credential (Credential type "slot-key"). Clients send the passphrase
	// itself to a daemon that does not say so (an older mysecure still
	// running after an upgrade).
	SlotKeys bool `json:"slot_keys,omitempty"`
}

// statusDenials is how many of the latest denials status groups.
const statusDenials = 200

// Status reports the daemon's state.
func (d *Daemon) Status() Status {
	rs := d.engine.Rules()
	n := 0
	if rs != nil {
		n = len(rs.Rules)
	}
	return Status{
		Mounted: true, Store: d.cfg.Store, Mount: d.cfg.Mount, Mode: d.Mode(), Pid: d.pid,
		Started: d.started.UTC().Format(time.RFC3339), VolumeID: d.vol.Config.VolumeID,
		Categories: d.fsys.Categories(), Rules: n, DenyAll: d.denyAllReason(),
		Denials: d.denials.Load(), Allows: d.allows.Load(), Opens: d.fsys.Opens(), Hashes: d.ident.Hashes(),
		AuditLog: d.cfg.AuditLog, RulesLoaded: d.denyAllReason() == "",
		Warnings:      d.ruleWarnings(),
		RecentDenials: d.DenialGroups(d.Denials(DenialQuery{Limit: statusDenials})),
		Goroutines:    runtime.NumGoroutine(),
		SlotKeys:      true,
	}
}

// CheckCredential verifies a master credential against the running
// volume: it must unlock the config on disk to the same master key. Key
// files are not master credentials (they exist for unattended start).
func (d *Daemon) CheckCredential(c volume.Credential) error {
	_, k, err := d.unlockMaster(c)
	if err != nil {
		return err
	}
	k.Wipe()
	return nil
}

// unlockMaster loads the config on disk and unlocks it with the master
// credential c, which must open it to the master key the daemon runs
// with. The caller wipes the keys.
func (d *Daemon) unlockMaster(c volume.Credential) (*volume.Volume, *volume.Keys, error) {
	if c.SlotType() == volume.SlotKeyFile {
		return nil, nil, fmt.Errorf("%w: a key file is not a master credential; give the passphrase and salt or the RSA key", volume.ErrIncorrectCredentials)
	}
	v, err := volume.Load(d.cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	k, err := v.Unlock(c)
	if err != nil {
		return nil, nil, err
	}
	if err := k.RequireMaster(); err != nil {
		k.Wipe()
		return nil, nil, fmt.Errorf("%w: %v", volume.ErrIncorrectCredentials, err)
	}
	a, err := k.Subkey(volume.PurposeRules, "")
	if err != nil {
		k.Wipe()
		return nil, nil, err
	}
	defer clear(a)
	b, err := d.keys.Subkey(volume.PurposeRules, "")
	if err != nil {
		k.Wipe()
		return nil, nil, err
	}
	defer clear(b)
	if subtle.ConstantTimeCompare(a, b) != 1 {
		k.Wipe()
		return nil, nil, volume.ErrIncorrectCredentials
	}
	return v, k, nil
}

// lazyUnmount is the fallback of `mysecure umount` when no daemon answers.
func LazyUnmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err == nil {
		return nil
	}
	if out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("failed to unmount %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
