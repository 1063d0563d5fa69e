package backup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// DefaultCredentials is the name used when none is given.
const DefaultCredentials = "default"

var credNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidCredentialsName reports whether name can name stored credentials.
func ValidCredentialsName(name string) bool {
	return credNameRE.MatchString(name) && !strings.HasSuffix(name, ".")
}

func credPath(name string) string { return path.Join(credsDir, name+".cnf") }

// SetCredentials stores c as credentials name (replacing any).
func (s *Service) SetCredentials(name string, c mycnf.Client) error {
	if !ValidCredentialsName(name) {
		return usageErr("credentials name %q: use letters, digits, '.', '_' and '-'", name)
	}
	if c.User == "" {
		return usageErr("a user is required")
	}
	b, err := c.Render()
	if err != nil {
		return usageErr("%v", err)
	}
	defer clear(b)
	if err := s.Tree.MkdirAll(credsDir, 0o700); err != nil {
		return err
	}
	if err := s.Tree.WriteFile(credPath(name), b, 0o600); err != nil {
		return fmt.Errorf("failed to store credentials %s: %w", name, err)
	}
	s.log().Info("credentials stored", "name", name, "user", c.User)
	return nil
}

// credentials returns the stored option file of name. The caller clears it.
func (s *Service) credentials(name string) ([]byte, error) {
	if name == "" {
		name = DefaultCredentials
	}
	if !ValidCredentialsName(name) {
		return nil, usageErr("credentials name %q: use letters, digits, '.', '_' and '-'", name)
	}
	b, err := s.Tree.ReadFile(credPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no credentials named %q (store them with 'mysecure backup credentials set --name %s')", ErrNotFound, name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read credentials %s: %w", name, err)
	}
	return b, nil
}

// CredentialsInfo is stored credentials without the password.
type CredentialsInfo struct {
	Name        string `json:"name"`
	User        string `json:"user"`
	Host        string `json:"host,omitempty"`
	Port        int    `json:"port,omitempty"`
	Socket      string `json:"socket,omitempty"`
	HasPassword bool   `json:"has_password"`
	Password    string `json:"password,omitempty"` // "********" when set
}

// ShowCredentials returns credentials name, password redacted.
func (s *Service) ShowCredentials(name string) (*CredentialsInfo, error) {
	b, err := s.credentials(name)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	f, err := mycnf.Parse(bytes.NewReader(b), name+".cnf")
	if err != nil {
		return nil, fmt.Errorf("%w: credentials %s do not parse: %v", ErrCorrupt, name, err)
	}
	c, err := mycnf.ParseClient(f.Options)
	if err != nil {
		return nil, fmt.Errorf("%w: credentials %s: %v", ErrCorrupt, name, err)
	}
	info := &CredentialsInfo{Name: name, User: c.User, Host: c.Host, Port: c.Port, Socket: c.Socket, HasPassword: c.Password != ""}
	if info.HasPassword {
		info.Password = "********"
	}
	return info, nil
}

// ListCredentials returns every stored credentials, redacted.
func (s *Service) ListCredentials() ([]CredentialsInfo, error) {
	ents, err := s.Tree.ReadDir(credsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []CredentialsInfo
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name, ".cnf")
		if !ok || !ValidCredentialsName(name) {
			continue
		}
		info, err := s.ShowCredentials(name)
		if err != nil {
			return nil, err
		}
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveCredentials deletes credentials name.
func (s *Service) RemoveCredentials(name string) error {
	if _, err := s.credentials(name); err != nil {
		return err
	}
	if err := s.Tree.Remove(credPath(name)); err != nil {
		return err
	}
	s.log().Info("credentials removed", "name", name)
	return nil
}
