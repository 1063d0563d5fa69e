package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
)

// What 'engine enable' and 'engine status' decide before they print.

// ErrForeignRules: rules other than engine mode's open the key file.
var ErrForeignRules = errors.New("other rules open the engine key file")

// ForeignRulesError is the refusal of 'engine enable' for the rules
// ForeignRules found (nil for none).
func ForeignRulesError(rules []string) error {
	if len(rules) == 0 {
		return nil
	}
	return hint.Wrap(fmt.Errorf("%w: %s", ErrForeignRules, strings.Join(rules, "; ")),
		"remove them ('mysecure acl del N'): each lets another program read the engine keys (a rule for the binary before 'harden mysqld' is one); or pass --keep-existing-rules")
}

// ClientConn is the client connection through a client option file
// (credentials included) and a socket; nil when both are empty: the
// server is not to be reached.
func ClientConn(defaultsFile, socket string) *Conn {
	var args []string
	if defaultsFile != "" {
		args = append(args, "--defaults-file="+defaultsFile)
	}
	if socket != "" {
		args = append(args, "--socket="+socket)
	}
	if len(args) == 0 {
		return nil
	}
	return &Conn{Args: args}
}

// AriaPlan is the Aria rebuild of 'engine enable' on MariaDB: with the
// server reachable (sql) and running in engine mode, the step that
// rebuilds the Aria tables still in plaintext; otherwise no step, and
// later says what to do ("" with the step).
func (s *Setup) AriaPlan(ctx context.Context, sql *Conn) (steps []plan.Step, later string, err error) {
	later = "restart the server, then run 'mysecure engine enable --mysql-socket SOCKET' again: it rebuilds the Aria tables written before engine mode"
	if s.Opts.Flavor != MariaDB || sql == nil {
		return nil, later, nil
	}
	step, notYet, err := AriaEncryptStep(ctx, *sql)
	if err != nil {
		return nil, "", err
	}
	if step == nil {
		return nil, notYet + ": restart the server, then run this again to rebuild the Aria tables written before engine mode", nil
	}
	return []plan.Step{step}, "", nil
}

// UseRecordedOrAuto is UseRecorded; with nothing recorded (a setup
// enabled by an earlier mysecure) the backup tool is the one 'engine
// enable' picks by default (configured is the configured physical tool).
func (o *Options) UseRecordedOrAuto(configured string) error {
	ok, err := o.UseRecorded()
	if err != nil || ok {
		return err
	}
	if bt, err := hardening.ResolveBackupTool("auto", configured); err == nil {
		o.BackupTool = bt
	}
	return nil
}

// Report is 'engine status': engine mode's steps compared with the host
// and, when the server was reached, its encryption.
type Report struct {
	Steps  []plan.Finding `json:"steps"`
	Server *Status        `json:"server,omitempty"`
	Error  string         `json:"server_error,omitempty"`
	// OK: every step in place, and the server (when reached) encrypts
	// everything with the key plugin active.
	OK bool `json:"ok"`
	// Disabling: run 1 of 'engine disable' is done, run 2 is to come.
	Disabling bool `json:"-"`
}

// Report compares the steps with the host and reads the server's
// encryption through sql (nil: not reached).
func (s *Setup) Report(ctx context.Context, sql *Conn) (*Report, error) {
	steps, err := plan.Check(ctx, s.Steps())
	if err != nil {
		return nil, err
	}
	r := &Report{Steps: steps, OK: len(plan.Drifted(steps)) == 0}
	if sql != nil {
		st, err := ReadStatus(ctx, *sql)
		if err != nil {
			r.Error, r.OK = err.Error(), false
		} else {
			r.Server, r.OK = st, r.OK && st.Done()
		}
	}
	if st, err := (&Disable{Setup: s}).Stage(); err == nil && st == StageFinish {
		r.Disabling = true
	}
	return r, nil
}

// Err is plan.ErrDrift, with what to do, when the report is not OK.
func (r *Report) Err() error {
	if r.OK {
		return nil
	}
	return hint.Wrap(fmt.Errorf("%w: engine mode is not complete", plan.ErrDrift),
		"'mysecure engine enable' puts missing steps back; the background threads encrypt existing InnoDB tables after a restart, and 'mysecure engine enable --mysql-socket SOCKET' after it rebuilds the Aria tables still in plaintext")
}
