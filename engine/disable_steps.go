package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// VarStep sets a global variable of the running server (SET GLOBAL: it
// lasts until the server stops; the option file makes it stay).
type VarStep struct {
	SQL               Conn
	Name, Value, Prev string
}

func (v *VarStep) ID() string       { return "engine:var:" + v.Name + "=" + v.Value }
func (v *VarStep) Describe() string { return "SET GLOBAL " + v.Name + " = " + v.Value }

func (v *VarStep) Check(ctx context.Context) (bool, string, error) {
	vars, err := v.SQL.variables(ctx, v.Name)
	if err != nil {
		return false, "", err
	}
	got, ok := vars[v.Name]
	if !ok {
		return false, "", fmt.Errorf("the server has no variable %s", v.Name)
	}
	if sameSetting(got, v.Value) {
		return true, "", nil
	}
	return false, v.Name + " is " + got, nil
}

func (v *VarStep) set(ctx context.Context, value string) error {
	// Quoted: FORCE is a keyword.
	_, err := v.SQL.Query(ctx, "SET GLOBAL "+v.Name+" = '"+value+"';")
	return err
}

func (v *VarStep) Apply(ctx context.Context) error { return v.set(ctx, v.Value) }
func (v *VarStep) Undo(ctx context.Context) error  { return v.set(ctx, v.Prev) }

// sameSetting compares two values of a server variable (1 and ON, 0 and
// OFF as one).
func sameSetting(a, b string) bool {
	norm := func(s string) string {
		switch s = strings.ToUpper(strings.TrimSpace(s)); s {
		case "1", "TRUE", "YES":
			return "ON"
		case "0", "FALSE", "NO":
			return "OFF"
		}
		return s
	}
	return norm(a) == norm(b)
}

// DecryptWaitStep waits until the background threads have decrypted every
// InnoDB tablespace (information_schema.INNODB_TABLESPACES_ENCRYPTION).
// Its undo is the undo of innodb_encrypt_tables: the threads encrypt
// again.
type DecryptWaitStep struct {
	SQL           Conn
	Timeout, Poll time.Duration
}

func (w *DecryptWaitStep) ID() string { return "engine:decrypt-wait" }
func (w *DecryptWaitStep) Describe() string {
	return "wait until the background threads have decrypted every InnoDB tablespace"
}

func (w *DecryptWaitStep) encrypted(ctx context.Context) ([]string, error) {
	st, err := ReadStatus(ctx, w.SQL)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ts := range st.Tablespaces {
		if ts.Encrypted {
			out = append(out, ts.Name)
		}
	}
	return out, nil
}

func (w *DecryptWaitStep) Check(ctx context.Context) (bool, string, error) {
	enc, err := w.encrypted(ctx)
	if err != nil {
		return false, "", err
	}
	if len(enc) > 0 {
		return false, fmt.Sprintf("%d tablespace(s) encrypted", len(enc)), nil
	}
	return true, "", nil
}

func (w *DecryptWaitStep) Apply(ctx context.Context) error {
	timeout, poll := w.Timeout, w.Poll
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	if poll <= 0 {
		poll = 2 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		enc, err := w.encrypted(ctx)
		if err != nil {
			return err
		}
		if len(enc) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tablespace(s) still encrypted after %s (%s): pass a longer --timeout", len(enc), timeout, strings.Join(enc, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (w *DecryptWaitStep) Undo(context.Context) error { return nil }

// CnfSwapStep replaces engine mode's option file of one phase by that of
// another ("" To: removes it). It refuses a file that is neither.
type CnfSwapStep struct {
	Path     string
	From, To string
	Phase    Phase // the phase To puts in force
}

func (c *CnfSwapStep) ID() string { return "engine:cnf:" + c.Phase.String() + ":" + c.Path }
func (c *CnfSwapStep) Describe() string {
	if c.To == "" {
		return "remove " + c.Path + ": the server's next start loads no key plugin"
	}
	return "write " + c.Path + " (" + c.Phase.String() + "): encryption off, the key plugin still loaded"
}

func (c *CnfSwapStep) read() (string, bool, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	return string(b), err == nil, err
}

func (c *CnfSwapStep) Check(context.Context) (bool, string, error) {
	cur, ok, err := c.read()
	if err != nil {
		return false, "", err
	}
	if cur == c.To && (ok || c.To == "") {
		return true, "", nil
	}
	return false, "engine mode's option file is not " + c.Phase.String(), nil
}

func (c *CnfSwapStep) put(content string) error {
	if content == "" {
		return RemoveOwn(c.Path)
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return err
	}
	return writeAtomic(c.Path, []byte(content), 0o644)
}

func (c *CnfSwapStep) Apply(context.Context) error {
	cur, ok, err := c.read()
	if err != nil {
		return err
	}
	if ok != (c.From != "") || cur != c.From {
		return fmt.Errorf("%s changed while engine disable ran: left as it is", c.Path)
	}
	return c.put(c.To)
}

func (c *CnfSwapStep) Undo(context.Context) error { return c.put(c.From) }
