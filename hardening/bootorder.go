package hardening

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BootMarker starts the drop-in BootOrderStep writes; undo removes only a
// file that carries it.
const BootMarker = "# written by mysecure (policy boot order); 'mysecure policy' undo removes it"

// BootOrderDropIn is the drop-in that makes a database unit wait for a
// ready mysecure mount and stop when it goes away (examples/
// mariadb-after-mysecure.conf and docs/boot.md say why BindsTo=).
const BootOrderDropIn = BootMarker + `
# Start the server only on a ready mysecure mount (Type=notify: READY=1 once
# the mount serves), and stop it whenever the mount goes away (docs/boot.md).
[Unit]
After=mysecure.service
BindsTo=mysecure.service
`

// BootOrderStep installs BootOrderDropIn for Unit (mariadb.service,
// mysql.service) under DropInDir (default /etc/systemd/system), so that
// the server never starts on the empty directory under the mount point.
type BootOrderStep struct {
	Unit      string
	DropInDir string
	// Reload runs `systemctl daemon-reload` when systemd runs (nil: the
	// default, which does so; tests replace it).
	Reload func() error
}

func (s *BootOrderStep) path() string {
	dir := s.DropInDir
	if dir == "" {
		dir = "/etc/systemd/system"
	}
	return filepath.Join(dir, s.Unit+".d", "mysecure-mount.conf")
}

// ID implements plan.Step.
func (s *BootOrderStep) ID() string { return "boot-order:" + s.path() }

// Describe implements plan.Step.
func (s *BootOrderStep) Describe() string {
	return fmt.Sprintf("write the systemd drop-in %s: %s starts after the mount is ready and stops when it goes", s.path(), s.Unit)
}

// Check implements plan.Step.
func (s *BootOrderStep) Check(ctx context.Context) (bool, string, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Sprintf("the drop-in %s is missing: %s may start before the mount", s.path(), s.Unit), nil
	}
	if err != nil {
		return false, "", err
	}
	if string(b) != BootOrderDropIn {
		return false, fmt.Sprintf("the drop-in %s differs from what mysecure writes", s.path()), nil
	}
	return true, "", nil
}

// Apply implements plan.Step.
func (s *BootOrderStep) Apply(ctx context.Context) error {
	if err := writeMarked(s.path(), BootOrderDropIn); err != nil {
		return err
	}
	return s.reload()
}

// Undo implements plan.Step.
func (s *BootOrderStep) Undo(ctx context.Context) error {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(b) < len(BootMarker) || string(b[:len(BootMarker)]) != BootMarker {
		return fmt.Errorf("%s was not written by mysecure: left alone", s.path())
	}
	if err := os.Remove(s.path()); err != nil {
		return err
	}
	os.Remove(filepath.Dir(s.path())) // an empty .d directory
	return s.reload()
}

func (s *BootOrderStep) reload() error {
	if s.Reload != nil {
		return s.Reload()
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return nil // systemd is not running here
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %v: %s", err, out)
	}
	return nil
}

// writeMarked writes a file mysecure owns, refusing to replace one that
// does not start with BootMarker.
func writeMarked(path, content string) error {
	if old, err := os.ReadFile(path); err == nil && (len(old) < len(BootMarker) || string(old[:len(BootMarker)]) != BootMarker) {
		return fmt.Errorf("%w: %s exists and was not written by mysecure", os.ErrExist, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
