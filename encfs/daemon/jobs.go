package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Jobs runs the operations of a module (backups) for the control API.
// The daemon only authenticates the caller and streams what the job
// reports; it does not know what a job does (encfs must not know about
// MySQL).
type Jobs interface {
	// Run runs one request. root is false for members of the backup
	// group, who may only run what the module admits for them. emit
	// sends a progress event to the caller.
	Run(ctx context.Context, req json.RawMessage, root bool, emit func(event any)) (result any, err error)
	// Code classifies an error of Run as an API error code; "" or
	// CodeInternal leaves it to the daemon's own codes (an unknown
	// category, a missing file).
	Code(err error) string
}

// JobHinter is implemented by Jobs that can say what to do about an
// error of Run (the rule to add for a tool the access rules denied); the
// hint travels in APIError.Hint.
type JobHinter interface {
	Hint(err error) string
}

// JobLine is one line of a job's streamed answer: an event, the result,
// or the error that ended it.
type JobLine struct {
	Event  json.RawMessage `json:"event,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *APIError       `json:"error,omitempty"`
}

// handleJobs runs a job and streams its events as JSON lines.
func (d *Daemon) handleJobs(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Jobs == nil {
		writeErr(w, http.StatusNotFound, &APIError{Code: CodeUsage, Message: "this daemon runs no jobs (no backup module configured)"})
		return
	}
	if !d.jobs.enter() {
		writeErr(w, http.StatusServiceUnavailable, &APIError{Code: CodeInternal, Message: "the daemon is shutting down"})
		return
	}
	defer d.jobs.leave()
	cred, _ := r.Context().Value(peerKey{}).(*syscall.Ucred)
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		writeErr(w, http.StatusBadRequest, &APIError{Code: CodeUsage, Message: "bad request: " + err.Error()})
		return
	}
	defer clear(body)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(l JobLine) {
		// A caller that stops reading does not hold this goroutine.
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
		enc.Encode(l)
		rc.Flush()
	}
	root := cred != nil && cred.Uid == 0
	uid := uint32(0)
	pid := 0
	if cred != nil {
		uid, pid = cred.Uid, int(cred.Pid)
	}
	d.auditSession("job-start", pid, uid)
	// The job stops when the caller goes away (Ctrl-C on `mysecure
	// restore`) or the daemon stops; either way it removes what it left
	// half done.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if d.jobCtx != nil {
		stop := context.AfterFunc(d.jobCtx, cancel)
		defer stop()
	}
	// Progress never blocks the job: a caller that does not read gets
	// the latest event when it does (a slow reader cannot stall a tool
	// holding its snapshot).
	latest := make(chan []byte, 1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := range latest {
			send(JobLine{Event: b})
		}
	}()
	res, err := d.cfg.Jobs.Run(ctx, body, root, func(ev any) {
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		select {
		case latest <- b:
		default:
			select { // replace the pending event with this one
			case <-latest:
			default:
			}
			select {
			case latest <- b:
			default:
			}
		}
	})
	close(latest)
	<-writerDone
	if err != nil {
		d.log.Warn("job failed", "uid", uid, "pid", pid, "err", err)
		ae := jobError(d.cfg.Jobs, err)
		if h, ok := d.cfg.Jobs.(JobHinter); ok {
			ae.Hint = h.Hint(err)
		}
		send(JobLine{Error: ae})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		send(JobLine{Error: &APIError{Code: CodeInternal, Message: err.Error()}})
		return
	}
	send(JobLine{Result: b})
}

// jobError classifies an error of a job: the module's code, else the
// daemon's.
func jobError(jobs Jobs, err error) *APIError {
	if c := jobs.Code(err); c != "" && c != CodeInternal {
		return &APIError{Code: c, Message: err.Error()}
	}
	_, ae := apiError(err)
	return ae
}

// backupGID resolves the configured backup group.
func (d *Daemon) backupGID() (int, error) {
	g, err := user.LookupGroup(d.cfg.BackupGroup)
	if err != nil {
		return 0, fmt.Errorf("backup group %q: %w", d.cfg.BackupGroup, err)
	}
	return strconv.Atoi(g.Gid)
}

// jobSocketEnabled reports whether the daemon serves the job socket.
func (d *Daemon) jobSocketEnabled() bool {
	return d.cfg.JobSocket != "" && d.cfg.BackupGroup != "" && d.cfg.Jobs != nil
}

// traversableBy reports whether members of gid may search dir: o+x, or
// g+x with dir's group gid.
func traversableBy(dir string, gid int) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return false
	}
	return st.Mode&0o001 != 0 || (st.Mode&0o010 != 0 && int(st.Gid) == gid)
}

// inGroup reports whether process pid (uid/gid from SO_PEERCRED) has gid
// as its primary or a supplementary group.
func inGroup(pid int, gid uint32, want int) bool {
	if int(gid) == want {
		return true
	}
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return false
	}
	for _, g := range st.Groups {
		if int(g) == want {
			return true
		}
	}
	return false
}

// requireJobCaller admits root and members of the backup group to the job
// socket, and nothing but the job endpoint.
func (d *Daemon) requireJobCaller(gid int, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, ok := r.Context().Value(peerKey{}).(*syscall.Ucred)
		if !ok || (cred.Uid != 0 && !inGroup(int(cred.Pid), cred.Gid, gid)) {
			writeErr(w, http.StatusForbidden, &APIError{Code: CodeDenied, Message: fmt.Sprintf("only root and members of group %s may start jobs", d.cfg.BackupGroup)})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// listenJobs opens the job socket: mode 0660, group the backup group, in
// the control socket's directory (made traversable, 0711, not listable).
func (d *Daemon) listenJobs() (net.Listener, int, error) {
	gid, err := d.backupGID()
	if err != nil {
		return nil, 0, err
	}
	dir := filepath.Dir(d.cfg.JobSocket)
	// Members must traverse the directory: a new one is 0711 (the root
	// socket in it is 0600, traversing does not open it). An existing
	// one keeps its mode; if members cannot traverse it, say so.
	created, err := ensureSocketDir(dir, 0o711)
	if err != nil {
		return nil, 0, err
	}
	if !created && !traversableBy(dir, gid) {
		d.log.Warn("members of the backup group cannot reach the job socket: its directory is not searchable by them; its mode is left as it is",
			"dir", dir, "group", d.cfg.BackupGroup, "hint", "chmod 0711 "+dir)
	}
	if fi, err := os.Lstat(d.cfg.JobSocket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, 0, fmt.Errorf("%s exists and is not a socket: refusing to replace it", d.cfg.JobSocket)
		}
		os.Remove(d.cfg.JobSocket)
	}
	ln, err := net.Listen("unix", d.cfg.JobSocket)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to listen on %s: %w", d.cfg.JobSocket, err)
	}
	err = os.Chown(d.cfg.JobSocket, 0, gid)
	if err == nil {
		err = os.Chmod(d.cfg.JobSocket, 0o660)
	}
	if err != nil {
		ln.Close()
		return nil, 0, err
	}
	return ln, gid, nil
}

// Job runs a job request on the daemon, calling onEvent for each
// progress event, and decodes the result into out.
func (c *Client) Job(ctx context.Context, req any, onEvent func(json.RawMessage), out any) error {
	if err := c.checkSocket(); err != nil {
		return err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	defer clear(b)
	hreq, err := http.NewRequestWithContext(ctx, "POST", "http://mysecure/v1/jobs", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := c.streamClient().Do(hreq)
	if err != nil {
		if dialNotRunning(err) {
			return fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
		}
		return fmt.Errorf("failed to reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae APIError
		if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
			return ae.resolve(c.jobErr)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var l JobLine
		if err := dec.Decode(&l); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the daemon ended the job without a result: %w", err)
		}
		switch {
		case l.Error != nil:
			return l.Error.resolve(c.jobErr)
		case l.Result != nil:
			if out != nil {
				return json.Unmarshal(l.Result, out)
			}
			return nil
		case l.Event != nil && onEvent != nil:
			onEvent(l.Event)
		}
	}
}

// streamClient is the client without an overall timeout: jobs run for
// hours.
func (c *Client) streamClient() *http.Client {
	hc := *c.hc
	hc.Timeout = 0
	return &hc
}
