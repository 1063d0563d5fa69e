package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/volume"

	"github.com/mysecure/mysecure/internal/procfs"
)

// The control API is HTTP with JSON bodies over a unix socket that only
// root can connect to (mode 0600). The daemon also checks the caller's
// uid with SO_PEERCRED; changing rules or the mode additionally needs the
// master credential in the request (passphrase and salt, or the RSA key),
// except in admin mode.

// Credential is a master credential carried in a request body. []byte
// fields travel as base64 inside the root-only socket.
//
// A passphrase never does: the Client turns it into the key of the
// passphrase slot it opens (type "slot-key", volume.SlotKey), derived in
// the CLI, so that the passphrase and salt never reach the daemon's memory,
// where buffers of net/http and encoding/json would keep them
// (docs/threat-model.md). The daemon still accepts type "passphrase" from
// older clients.
type Credential struct {
	Type        string `json:"type"` // "slot-key", "passphrase" or "rsa"
	Passphrase  []byte `json:"passphrase,omitempty"`
	Salt        []byte `json:"salt,omitempty"`
	Slot        int    `json:"slot,omitempty"`
	SlotKey     []byte `json:"slot_key,omitempty"`
	RSAPEM      []byte `json:"rsa_pem,omitempty"`
	RSAPassword []byte `json:"rsa_password,omitempty"`
}

// The Types of a Credential: a passphrase slot's key instead of the
// passphrase (what a Client sends), the passphrase and salt themselves
// (older clients), an RSA private key.
const (
	CredentialSlotKey    = "slot-key"
	CredentialPassphrase = "passphrase"
	CredentialRSA        = "rsa"
)

// Wipe zeroes the secrets.
func (c *Credential) Wipe() {
	if c == nil {
		return
	}
	clear(c.Passphrase)
	clear(c.Salt)
	clear(c.SlotKey)
	clear(c.RSAPEM)
	clear(c.RSAPassword)
}

// VolumeCredential converts c for volume.Unlock.
func (c *Credential) VolumeCredential() (volume.Credential, error) {
	switch c.Type {
	case CredentialSlotKey:
		return volume.SlotKey{Slot: c.Slot, Key: c.SlotKey}, nil
	case CredentialPassphrase:
		return volume.Passphrase{Passphrase: c.Passphrase, Salt: c.Salt}, nil
	case CredentialRSA:
		var pw []byte
		if len(c.RSAPassword) > 0 {
			pw = c.RSAPassword
		}
		k, err := volume.ParseRSAPrivateKeyPEM(c.RSAPEM, pw)
		if err != nil {
			return nil, err
		}
		return volume.RSAPrivateKey{Key: k}, nil
	}
	return nil, fmt.Errorf("%w: unknown credential type %q", volume.ErrIncorrectCredentials, c.Type)
}

// ACLRequest changes or lists rules.
type ACLRequest struct {
	Op         string      `json:"op"` // add, del, update
	Rule       string      `json:"rule,omitempty"`
	Index      int         `json:"index,omitempty"` // 1-based, for del
	Credential *Credential `json:"credential,omitempty"`
}

// RuleInfo is a rule as listed.
type RuleInfo struct {
	Index int      `json:"index"`
	Text  string   `json:"text"`
	Rule  acl.Rule `json:"rule"`
}

// ACLResponse lists the rules after a change, and what changed.
type ACLResponse struct {
	Rules   []RuleInfo `json:"rules"`
	Changes []string   `json:"changes,omitempty"`
}

// ModeRequest sets the mode.
type ModeRequest struct {
	Mode       string      `json:"mode"`
	Credential *Credential `json:"credential,omitempty"`
}

type peerKey struct{}

// ServeControl listens on the control socket until ctx ends.
func (d *Daemon) ServeControl(ctx context.Context) error {
	// A directory we create is root-only (0711 when the job socket
	// shares it: group members must reach that one); an existing one is
	// used as it is, unless others could replace the socket in it.
	// Clients refuse such a directory too (they would send credentials).
	dirMode := os.FileMode(0o700)
	if d.jobSocketEnabled() && filepath.Dir(d.cfg.JobSocket) == filepath.Dir(d.cfg.Socket) {
		dirMode = 0o711
	}
	if _, err := ensureSocketDir(filepath.Dir(d.cfg.Socket), dirMode); err != nil {
		return err
	}
	if c, err := net.Dial("unix", d.cfg.Socket); err == nil {
		c.Close()
		return fmt.Errorf("%w: a daemon already answers on %s", ErrAlreadyMounted, d.cfg.Socket)
	}
	if fi, err := os.Lstat(d.cfg.Socket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket: refusing to replace it", d.cfg.Socket)
		}
		os.Remove(d.cfg.Socket)
	}
	ln, err := net.Listen("unix", d.cfg.Socket)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", d.cfg.Socket, err)
	}
	if err := os.Chmod(d.cfg.Socket, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.handleStatus)
	mux.HandleFunc("POST /v1/umount", d.handleUmount)
	mux.HandleFunc("GET /v1/acl", d.handleACLList)
	mux.HandleFunc("POST /v1/acl", d.handleACL)
	mux.HandleFunc("POST /v1/mode", d.handleMode)
	mux.HandleFunc("GET /v1/categories", d.handleCategoryList)
	mux.HandleFunc("POST /v1/categories", d.handleCategory)
	mux.HandleFunc("POST /v1/move/begin", d.handleMoveBegin)
	mux.HandleFunc("POST /v1/move/end", d.handleMoveEnd)
	mux.HandleFunc("POST /v1/jobs", d.handleJobs)
	mux.HandleFunc("GET /v1/denials", d.handleDenials)
	d.jobCtx = ctx
	var jobSrv *http.Server
	if d.jobSocketEnabled() {
		jln, gid, err := d.listenJobs()
		if err != nil {
			ln.Close()
			return err
		}
		jmux := http.NewServeMux()
		jmux.HandleFunc("POST /v1/jobs", d.handleJobs)
		jobSrv = &http.Server{
			Handler:           d.requireJobCaller(gid, jmux),
			ReadHeaderTimeout: 10 * time.Second,
			ConnContext:       peerContext,
		}
		go jobSrv.Serve(jln)
		defer os.Remove(d.cfg.JobSocket)
	}
	srv := &http.Server{
		Handler:           d.requireRoot(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       peerContext,
	}
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		// Let answers in flight (the umount that ended the mount)
		// reach their callers.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if jobSrv != nil {
			go jobSrv.Shutdown(sctx)
		}
		srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		// Serve returns at once; Shutdown is still draining.
		<-shut
	}
	os.Remove(d.cfg.Socket)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// peerContext puts the connecting process's credentials (SO_PEERCRED)
// into the request context.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	if uc, ok := c.(*net.UnixConn); ok {
		if cred, err := peerCred(uc); err == nil {
			return context.WithValue(ctx, peerKey{}, cred)
		}
	}
	return ctx
}

func peerCred(c *net.UnixConn) (*syscall.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var serr error
	err = raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil {
		return nil, err
	}
	return cred, serr
}

// requireRoot admits only uid 0 (the socket mode already does; this is
// the second lock, and the place where a backup group will be admitted to
// backup jobs only).
func (d *Daemon) requireRoot(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, ok := r.Context().Value(peerKey{}).(*syscall.Ucred)
		if !ok || cred.Uid != 0 {
			writeErr(w, http.StatusForbidden, &APIError{Code: CodeDenied, Message: "the control API is for root only"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, e *APIError) { writeJSON(w, status, e) }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &APIError{Code: CodeUsage, Message: "bad request: " + err.Error()}
	}
	return nil
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.Status())
}

// DenialsResponse lists recent denials and their groups.
type DenialsResponse struct {
	Denials []Denial      `json:"denials"`
	Groups  []DenialGroup `json:"groups"`
}

// handleDenials answers GET /v1/denials?since=RFC3339NANO&pgid=N&limit=N.
func (d *Daemon) handleDenials(w http.ResponseWriter, r *http.Request) {
	var q DenialQuery
	v := r.URL.Query()
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, &APIError{Code: CodeUsage, Message: "bad since: " + err.Error()})
			return
		}
		q.Since = t
	}
	for name, p := range map[string]*int{"pgid": &q.Pgid, "limit": &q.Limit} {
		if s := v.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				writeErr(w, http.StatusBadRequest, &APIError{Code: CodeUsage, Message: "bad " + name + ": " + s})
				return
			}
			*p = n
		}
	}
	ds := d.Denials(q)
	writeJSON(w, http.StatusOK, DenialsResponse{Denials: ds, Groups: d.DenialGroups(ds)})
}

func (d *Daemon) handleUmount(w http.ResponseWriter, r *http.Request) {
	if err := d.Unmount(); err != nil {
		writeErr(w, http.StatusConflict, &APIError{Code: CodeInUse, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"unmounted": d.cfg.Mount})
}

func (d *Daemon) ruleList() []RuleInfo {
	out := []RuleInfo{}
	if rs := d.engine.Rules(); rs != nil {
		for i, r := range rs.Rules {
			out = append(out, RuleInfo{Index: i + 1, Text: r.String(), Rule: r})
		}
	}
	return out
}

func (d *Daemon) handleACLList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ACLResponse{Rules: d.ruleList()})
}

// authorizeAdmin checks the master credential unless in admin mode.
func (d *Daemon) authorizeAdmin(c *Credential) error {
	if d.Mode() == Admin {
		return nil
	}
	if c == nil {
		return &APIError{Code: CodeCredentials, Message: "this change needs the master credential (passphrase and salt, or the RSA key)"}
	}
	vc, err := c.VolumeCredential()
	if err != nil {
		return err
	}
	return d.CheckCredential(vc)
}

func (d *Daemon) handleACL(w http.ResponseWriter, r *http.Request) {
	serveAdmin(d, w, r, func(req *ACLRequest) (any, error) {
		if err := d.authorizeAdmin(req.Credential); err != nil {
			return nil, err
		}
		changes, err := d.changeRules(*req)
		if err != nil {
			return nil, err
		}
		return ACLResponse{Rules: d.ruleList(), Changes: changes}, nil
	})
}

func (r *ACLRequest) credential() *Credential      { return r.Credential }
func (r *CategoryRequest) credential() *Credential { return r.Credential }
func (r *ModeRequest) credential() *Credential     { return r.Credential }

// serveAdmin decodes an admin change, runs change under adminMu (changes
// are serialized), wipes the credential it carried, and answers with
// change's result or error.
func serveAdmin[Req any, P interface {
	*Req
	credential() *Credential // the master credential it may carry
}](d *Daemon, w http.ResponseWriter, r *http.Request, change func(P) (any, error)) {
	var req P = new(Req)
	// Wiped also when the request is refused as malformed: the decoder
	// may have filled the credential before the error.
	defer func() { req.credential().Wipe() }()
	if err := decode(r, req); err != nil {
		fail(w, err)
		return
	}
	d.adminMu.Lock()
	res, err := change(req)
	d.adminMu.Unlock()
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// fail writes err as an API error response.
func fail(w http.ResponseWriter, err error) {
	status, ae := apiError(err)
	writeErr(w, status, ae)
}

// changeRules applies an add, del or update and saves the rule file. The
// rules in force change only once the file is saved.
func (d *Daemon) changeRules(req ACLRequest) ([]string, error) {
	rs := d.engine.Rules()
	if rs == nil || d.denyAllReason() != "" {
		// Rules were refused (tampered): changes start from an empty set,
		// which the admin then fills again.
		rs = &acl.RuleSet{}
	}
	var changes []string
	switch req.Op {
	case "add":
		rule, err := acl.ParseRule(req.Rule)
		if err != nil {
			return nil, &APIError{Code: CodeUsage, Message: err.Error()}
		}
		if err := volume.CheckCategory(rule.Category, d.fsys.Categories()); rule.Category != acl.AllCategories && err != nil {
			return nil, &APIError{Code: CodeUnknownCategory, Message: err.Error()}
		}
		if err := d.ident.FillRule(&rule); err != nil {
			return nil, &APIError{Code: CodeUsage, Message: err.Error()}
		}
		for _, r := range rs.Rules {
			if r.Equal(rule) {
				return nil, &APIError{Code: CodeConflict, Message: "rule exists already: " + rule.String()}
			}
		}
		rs.Rules = append(rs.Rules, rule)
		changes = append(changes, "added: "+rule.String()+" (sha256 "+rule.Exe.SHA256+")")
	case "del":
		idx := -1
		if req.Index > 0 {
			idx = req.Index - 1
		} else {
			rule, err := acl.ParseRule(req.Rule)
			if err != nil {
				return nil, &APIError{Code: CodeUsage, Message: err.Error()}
			}
			for i, r := range rs.Rules {
				if r.Equal(rule) || sameResolved(d.ident, r, rule) {
					idx = i
					break
				}
			}
		}
		if idx < 0 || idx >= len(rs.Rules) {
			return nil, &APIError{Code: CodeUsage, Message: "no such rule ('mysecure acl list' shows them)"}
		}
		changes = append(changes, "deleted: "+rs.Rules[idx].String())
		rs.Rules = append(rs.Rules[:idx:idx], rs.Rules[idx+1:]...)
	case "update":
		for i := range rs.Rules {
			r := &rs.Rules[i]
			for _, p := range r.Programs() {
				sum, err := d.ident.Fingerprint(p.Path)
				if err != nil {
					return nil, &APIError{Code: CodeUsage, Message: fmt.Sprintf("rule %d: %v", i+1, err)}
				}
				if sum != p.SHA256 {
					changes = append(changes, fmt.Sprintf("rule %d: %s sha256 %s -> %s", i+1, p.Path, p.SHA256, sum))
					p.SHA256 = sum
				}
			}
		}
		if len(changes) == 0 {
			changes = append(changes, "no fingerprint changed")
		}
	default:
		return nil, &APIError{Code: CodeUsage, Message: fmt.Sprintf("unknown acl op %q", req.Op)}
	}
	// One more than the highest generation known: the rules in force,
	// or the last one seen on this host (higher after refused rules).
	gen := rs.Generation
	if d.cfg.Rollback != nil {
		last, err := d.cfg.Rollback.Last(d.vol.Config.VolumeID, RulesFile)
		if err != nil {
			return nil, err
		}
		gen = max(gen, last)
	}
	rs.Generation = gen + 1
	key, err := d.rulesKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if err := acl.SaveRules(d.rulesPath(), rs, key); err != nil {
		return nil, err
	}
	if d.cfg.Rollback != nil {
		// After the save: a failure here leaves the protection one
		// generation behind, never a false alarm at the next mount.
		if err := d.cfg.Rollback.Observe(d.vol.Config.VolumeID, d.rulesPath(), rs.Generation); err != nil {
			d.log.Error("rule generation not recorded", "error", err.Error(), "generation", rs.Generation)
		}
	}
	d.setRules(rs)
	d.log.Info("rules changed", "op", req.Op, "changes", strings.Join(changes, "; "))
	return changes, nil
}

// sameResolved compares a stored rule with a typed one whose paths may
// still be symlinks (/bin/cat for /usr/bin/cat).
func sameResolved(id *acl.Identifier, stored, typed acl.Rule) bool {
	if err := id.FillRule(&typed); err != nil {
		return false
	}
	return stored.Equal(typed)
}

func (d *Daemon) handleMode(w http.ResponseWriter, r *http.Request) {
	serveAdmin(d, w, r, func(req *ModeRequest) (any, error) {
		m, err := ParseMode(req.Mode)
		if err != nil {
			return nil, &APIError{Code: CodeUsage, Message: err.Error()}
		}
		// Going back to enforcing only tightens: no credential needed.
		if m != Enforcing {
			if err := d.authorizeAdmin(req.Credential); err != nil {
				return nil, err
			}
		}
		old := d.Mode()
		d.mode.Store(m)
		d.log.Info("mode changed", "from", string(old), "to", string(m))
		return map[string]string{"mode": string(m), "previous": string(old)}, nil
	})
}

// MoveBeginRequest asks for a move session.
type MoveBeginRequest struct {
	Credential *Credential `json:"credential,omitempty"`
	Token      []byte      `json:"token,omitempty"`
}

// NewRecoveryToken returns a one-time token that lets the recovery process
// the daemon starts after mounting open a move session without the master
// credential. Hand it over a pipe, not argv or environment.
func (d *Daemon) NewRecoveryToken() ([]byte, error) {
	t := make([]byte, 32)
	if _, err := rand.Read(t); err != nil {
		return nil, err
	}
	d.tokenMu.Lock()
	d.tokens = append(d.tokens, append([]byte(nil), t...))
	d.tokenMu.Unlock()
	return t, nil
}

// useToken consumes a matching one-time token.
func (d *Daemon) useToken(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	d.tokenMu.Lock()
	defer d.tokenMu.Unlock()
	for i, k := range d.tokens {
		if subtle.ConstantTimeCompare(k, t) == 1 {
			d.tokens = append(d.tokens[:i], d.tokens[i+1:]...)
			return true
		}
	}
	return false
}

// auditSession records the start and end of a move session: while it
// lasts, the process opens plaintext without rules.
func (d *Daemon) auditSession(what string, pid int, uid uint32) {
	rec := AuditRecord{Time: time.Now().UTC(), Decision: what, Mode: string(d.Mode()), Pid: pid, Uid: uid,
		File: d.cfg.Mount, Reason: "encrypt/decrypt or recovery: the process moves data through the mount"}
	if exe, err := procfs.Exe(pid); err == nil {
		rec.Exe = exe
	}
	d.writeAudit(rec)
}

// MoveSession is what a mover (the `mysecure encrypt`/`decrypt` CLI, or
// the recovery run at mount) needs to move data through the mount itself.
type MoveSession struct {
	Mount      string   `json:"mount"`
	Store      string   `json:"store"`
	JournalDir string   `json:"journal_dir"`
	Categories []string `json:"categories"`
}

// handleMoveBegin lets the calling process (by SO_PEERCRED pid and its
// start time) open plaintext without rules until it ends the session or
// exits. The daemon itself never writes into its own mount: a FUSE server
// killed while blocked on its own mount cannot exit.
//
// It needs the master credential (or admin mode), or a one-time token the
// daemon gave the recovery process it started itself.
func (d *Daemon) handleMoveBegin(w http.ResponseWriter, r *http.Request) {
	var req MoveBeginRequest
	defer func() { req.Credential.Wipe(); clear(req.Token) }() // a malformed request too
	if err := decode(r, &req); err != nil {
		fail(w, err)
		return
	}
	if !d.useToken(req.Token) {
		if err := d.authorizeAdmin(req.Credential); err != nil {
			fail(w, err)
			return
		}
	}
	cred := r.Context().Value(peerKey{}).(*syscall.Ucred)
	start, err := procStart(int(cred.Pid))
	if err != nil {
		fail(w, err)
		return
	}
	d.moversMu.Lock()
	d.movers[int(cred.Pid)] = start
	d.moversMu.Unlock()
	d.log.Info("move session started", "pid", cred.Pid)
	d.auditSession("move-session-begin", int(cred.Pid), cred.Uid)
	writeJSON(w, http.StatusOK, MoveSession{Mount: d.cfg.Mount, Store: d.cfg.Store,
		JournalDir: filepath.Join(d.cfg.Store, JournalDir), Categories: d.fsys.Categories()})
}

func (d *Daemon) handleMoveEnd(w http.ResponseWriter, r *http.Request) {
	cred := r.Context().Value(peerKey{}).(*syscall.Ucred)
	d.moversMu.Lock()
	delete(d.movers, int(cred.Pid))
	d.moversMu.Unlock()
	d.log.Info("move session ended", "pid", cred.Pid)
	d.auditSession("move-session-end", int(cred.Pid), cred.Uid)
	writeJSON(w, http.StatusOK, struct{}{})
}

// procStart returns the start time (clock ticks since boot, field 22 of
// /proc/PID/stat) of a process: with the pid it names one process for
// good, even after the pid is reused.
func procStart(pid int) (uint64, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTime, nil
}

// tgid returns the process (thread group) id of a thread id.
func tgid(tid int) (int, error) {
	st, err := procfs.ReadStatus(tid)
	if err != nil {
		return 0, err
	}
	if st.Tgid == 0 {
		return 0, fmt.Errorf("no Tgid in %s", procfs.Path(tid, "status"))
	}
	return st.Tgid, nil
}

// ErrUnsafeSocketDir: the directory of a socket is not root's alone.
var ErrUnsafeSocketDir = errors.New("unsafe socket directory")

// ensureSocketDir creates dir with mode (parents 0755) when it is missing
// and reports whether it did. An existing directory keeps its mode: it is
// checked, not changed (an administrator may have set it on purpose, and
// a chmod would follow a directory someone else put there).
func ensureSocketDir(dir string, mode os.FileMode) (created bool, err error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, fmt.Errorf("failed to create socket dir: %w", err)
		}
		if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("failed to create socket dir: %w", err)
		} else if err == nil {
			created = true
			// Exactly mode, whatever the umask.
			if err := os.Chmod(dir, mode); err != nil {
				return true, fmt.Errorf("failed to set the mode of socket dir %s: %w", dir, err)
			}
		}
	} else if err != nil {
		return false, fmt.Errorf("failed to stat socket dir: %w", err)
	}
	return created, checkSocketDir(dir)
}

// checkSocketDir refuses a socket directory that is not owned by root or
// that group or others can write.
func checkSocketDir(dir string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return fmt.Errorf("failed to stat socket dir: %w", err)
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: %s must be owned by root and not writable by group or others, or another user could replace the socket (mode %04o, uid %d)", ErrUnsafeSocketDir, dir, st.Mode&0o7777, st.Uid)
	}
	return nil
}
