package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// Request is one backup operation, as the CLI sends it to the daemon (or
// runs it in process when no daemon runs).
type Request struct {
	Op          string          `json:"op"`
	Backup      *Options        `json:"backup,omitempty"`
	Restore     *RestoreOptions `json:"restore,omitempty"`
	Prune       *PruneOptions   `json:"prune,omitempty"`
	ID          string          `json:"id,omitempty"`
	All         bool            `json:"all,omitempty"`
	Name        string          `json:"name,omitempty"`
	Credentials *CredentialsIn  `json:"credentials,omitempty"`
	// Target is the catalog list, show, verify, delete and prune work
	// on: "" or "local" for the store, else an object store's name.
	Target string `json:"target,omitempty"`
}

// CredentialsIn are credentials to store.
type CredentialsIn struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Socket   string `json:"socket,omitempty"`
}

// Wipe drops the request's reference to the password. It does not erase
// it: a Go string is immutable and its bytes stay in memory until the
// garbage collector reuses them (the password arrives as JSON and is
// written into an encrypted option file as a string; carrying it as a
// byte slice end to end would be needed for a real wipe). What this
// prevents is the request carrying the password any further (a log of
// the request, a retry).
func (c *CredentialsIn) Wipe() {
	if c != nil {
		c.Password = ""
	}
}

// Operations.
const (
	OpBackup            = "backup"
	OpList              = "list"
	OpShow              = "show"
	OpVerify            = "verify"
	OpDelete            = "delete"
	OpPrune             = "prune"
	OpRestore           = "restore"
	OpCredentialsSet    = "credentials-set"
	OpCredentialsList   = "credentials-list"
	OpCredentialsShow   = "credentials-show"
	OpCredentialsRemove = "credentials-remove"
)

// GroupAllowed reports whether a member of the backup group (not root)
// may run op: start backups and look at the catalog, never read, delete
// or restore data, nor touch credentials.
func GroupAllowed(op string) bool {
	switch op {
	case OpBackup, OpList, OpShow, OpVerify:
		return true
	}
	return false
}

// ListResult is the catalog.
type ListResult struct {
	Backups []Entry           `json:"backups"`
	Broken  map[string]string `json:"broken,omitempty"`
}

// DoInto is Do with the result stored in out (a pointer; nil: dropped)
// through its JSON form, as the daemon's client stores a job's result: a
// run in the caller's process and one in the daemon give the same value.
func (s *Service) DoInto(ctx context.Context, req Request, root bool, progress func(Progress), out any) error {
	res, err := s.Do(ctx, req, root, progress)
	if err != nil || out == nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Do runs req. root says whether the caller is root; others may run only
// what GroupAllowed admits. progress may be nil.
func (s *Service) Do(ctx context.Context, req Request, root bool, progress func(Progress)) (any, error) {
	if !root && !GroupAllowed(req.Op) {
		return nil, fmt.Errorf("%w: %q is for root only", ErrDenied, req.Op)
	}
	if !root && req.Op == OpBackup && req.Backup != nil {
		// The tools run as root with stored credentials: a member of the
		// backup group may choose what to back up, not how (no extra
		// arguments: --result-file, --plugin-dir, --host would write
		// plaintext, load code or send the password elsewhere), not
		// which account, and not a schedule's name.
		b := req.Backup
		switch {
		case len(b.ExtraArgs) > 0:
			return nil, fmt.Errorf("%w: extra tool arguments are for root only", ErrDenied)
		case b.Job != "":
			return nil, fmt.Errorf("%w: scheduled jobs are run by root or the daemon", ErrDenied)
		case b.Credentials != "" && b.Credentials != DefaultCredentials:
			return nil, fmt.Errorf("%w: members of the backup group use the %q credentials only", ErrDenied, DefaultCredentials)
		case b.SSH != nil:
			// The daemon's SSH keys and the stored password would go to
			// a host the caller picks.
			return nil, fmt.Errorf("%w: backups over SSH are for root only", ErrDenied)
		}
	}
	if req.Op == OpPrune && req.Prune != nil && req.Target == "" {
		req.Target = req.Prune.Target
	}
	if req.Target != "" && req.Target != LocalTarget {
		switch req.Op {
		case OpList, OpShow, OpVerify, OpDelete, OpPrune:
			return s.doRemote(ctx, req)
		}
	}
	switch req.Op {
	case OpBackup:
		if req.Backup == nil {
			return nil, usageErr("backup options missing")
		}
		return s.Backup(ctx, *req.Backup, progress)
	case OpList:
		e, broken, err := s.List()
		if err != nil {
			return nil, err
		}
		res := ListResult{Backups: e}
		if len(broken) > 0 {
			res.Broken = map[string]string{}
			for id, err := range broken {
				res.Broken[id] = err.Error()
			}
		}
		if res.Backups == nil {
			res.Backups = []Entry{}
		}
		return res, nil
	case OpShow:
		return s.Get(req.ID)
	case OpVerify:
		if req.All {
			return s.VerifyAll(ctx)
		}
		r, err := s.Verify(ctx, req.ID)
		return []VerifyResult{r}, err
	case OpDelete:
		if err := s.Delete(req.ID); err != nil {
			return nil, err
		}
		return map[string]string{"deleted": req.ID}, nil
	case OpPrune:
		if req.Prune == nil {
			return nil, usageErr("prune options missing")
		}
		return s.Prune(*req.Prune)
	case OpRestore:
		if req.Restore == nil {
			return nil, usageErr("restore options missing")
		}
		return s.Restore(ctx, *req.Restore, progress)
	case OpCredentialsSet:
		c := req.Credentials
		defer c.Wipe()
		if c == nil {
			return nil, usageErr("credentials missing")
		}
		if err := s.SetCredentials(req.Name, mycnf.Client{User: c.User, Password: c.Password, Host: c.Host, Port: c.Port, Socket: c.Socket}); err != nil {
			return nil, err
		}
		return s.ShowCredentials(req.Name)
	case OpCredentialsList:
		l, err := s.ListCredentials()
		if l == nil {
			l = []CredentialsInfo{}
		}
		return l, err
	case OpCredentialsShow:
		return s.ShowCredentials(req.Name)
	case OpCredentialsRemove:
		if err := s.RemoveCredentials(req.Name); err != nil {
			return nil, err
		}
		return map[string]string{"removed": req.Name}, nil
	}
	return nil, usageErr("unknown operation %q", req.Op)
}

// DecodeRequest parses a request (strictly: unknown fields are refused).
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, usageErr("bad request: %v", err)
	}
	return r, nil
}

// doRemote runs a catalog operation on an object store.
func (s *Service) doRemote(ctx context.Context, req Request) (any, error) {
	r, err := s.remote(req.Target)
	if err != nil {
		return nil, err
	}
	switch req.Op {
	case OpList:
		e, broken, err := r.list(ctx)
		if err != nil {
			return nil, err
		}
		res := ListResult{Backups: e}
		if res.Backups == nil {
			res.Backups = []Entry{}
		}
		if len(broken) > 0 {
			res.Broken = map[string]string{}
			for id, err := range broken {
				res.Broken[id] = err.Error()
			}
		}
		return res, nil
	case OpShow:
		return r.get(ctx, req.ID)
	case OpVerify:
		if !req.All {
			v, err := r.verify(ctx, req.ID)
			return []VerifyResult{v}, err
		}
		entries, broken, err := r.list(ctx)
		if err != nil {
			return nil, err
		}
		return verifyEach(ctx, entries, broken, r.verify)
	case OpDelete:
		if err := r.delete(ctx, req.ID); err != nil {
			return nil, err
		}
		return map[string]string{"deleted": req.ID}, nil
	case OpPrune:
		if req.Prune == nil {
			return nil, usageErr("prune options missing")
		}
		entries, _, err := r.list(ctx)
		if err != nil {
			return nil, err
		}
		return s.prune(*req.Prune, entries, func(id string) error { return r.delete(ctx, id) },
			func(id string) (time.Time, error) { return r.lockedUntil(ctx, id) })
	}
	return nil, usageErr("unknown operation %q", req.Op)
}
