package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// PersistedFile is the file, in the datadir, where MySQL 8 keeps the
// variables set with SET PERSIST and SET PERSIST_ONLY; the server reads
// it at start, after the option files, when persisted_globals_load is ON.
const PersistedFile = "mysqld-auto.cnf"

// persisted returns MySQL's persisted variables as options (Line 0,
// File the mysqld-auto.cnf path), once per Run: nil on MariaDB, when the
// file does not exist or when the server does not load it. note says
// what was read.
func (a *auditor) persisted(ctx context.Context) ([]mycnf.Option, string, error) {
	if a.persistedDone {
		return a.persistedOpts, a.persistedNote, a.persistedErr
	}
	a.persistedDone = true
	a.persistedOpts, a.persistedNote, a.persistedErr = a.readPersisted(ctx)
	return a.persistedOpts, a.persistedNote, a.persistedErr
}

func (a *auditor) readPersisted(ctx context.Context) ([]mycnf.Option, string, error) {
	if a.flavor(ctx) != MySQL {
		return nil, "", nil
	}
	if on, v, err := a.boolVar(ctx, "persisted_globals_load"); err == nil && !on {
		return nil, "persisted_globals_load = " + v + ": the server ignores " + PersistedFile, nil
	}
	dir, err := a.dataDir(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", PersistedFile, err)
	}
	p := filepath.Join(dir, PersistedFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, p + " does not exist (no persisted variables)", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("persisted variables: %v (the audit must run on the server's host)", err)
	}
	opts, err := parsePersisted(b, p)
	if err != nil {
		return nil, "", err
	}
	return opts, fmt.Sprintf("%s: %d persisted variables", p, len(opts)), nil
}

// parsePersisted reads mysqld-auto.cnf: JSON with "Version" 1
// ({"mysql_server": {NAME: {"Value": ..., "Metadata": ...}, ...,
// "mysql_server_static_options": {...}}}) or 2 (MySQL 8.0.29+: the
// variables under mysql_dynamic_variables, mysql_static_variables, the
// *_parse_early_variables and mysql_sensitive_variables). Every object
// holding a string "Value" is a variable named by its key. Sensitive
// variables are stored encrypted: they are left out.
func parsePersisted(b []byte, path string) ([]mycnf.Option, error) {
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %v", path, err)
	}
	var out []mycnf.Option
	var walk func(m map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			obj, ok := v.(map[string]any)
			if !ok || k == "mysql_sensitive_variables" {
				continue
			}
			if val, ok := obj["Value"].(string); ok {
				out = append(out, mycnf.Option{Group: "mysqld", Name: k, Value: val, HasValue: true, File: path})
				continue
			}
			walk(obj)
		}
	}
	walk(doc)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
