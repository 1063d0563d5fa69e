package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Section 3: permissions of the files the server writes and reads.

// pathVar reads a variable naming a file, relative paths taken from the
// datadir; "" when unset.
func (a *auditor) pathVar(ctx context.Context, name string) (string, error) {
	v, err := a.variable(ctx, name)
	if err != nil {
		return "", err
	}
	if v == "" || v == Null {
		return "", nil
	}
	if !filepath.IsAbs(v) {
		dir, err := a.dataDir(ctx)
		if err != nil {
			return "", err
		}
		v = filepath.Join(dir, v)
	}
	return v, nil
}

// logFiles checks the files of a log whose base name (or single file)
// variable is name: with glob, base.* (binary and relay logs and their
// index), else the file itself.
func (a *auditor) logFiles(ctx context.Context, name, what string, glob bool) (outcome, error) {
	p, err := a.pathVar(ctx, name)
	if err != nil {
		return outcome{}, err
	}
	if p == "" {
		return notApplicable(name + " is not set: the log is not enabled"), nil
	}
	files := []string{p}
	if glob {
		files, err = filepath.Glob(p + ".*")
		if err != nil {
			return outcome{}, err
		}
	} else if _, err := os.Stat(p); os.IsNotExist(err) {
		return notApplicable(fmt.Sprintf("%s = %s does not exist (the log is not enabled)", name, p)), nil
	}
	if len(files) == 0 {
		return notApplicable(fmt.Sprintf("no files %s.*", p)), nil
	}
	var fails, notes []Evidence
	for _, f := range files {
		fl, n, err := a.serverFilePerms(f, what, 0o660)
		if err != nil {
			return outcome{}, err
		}
		fails, notes = append(fails, fl...), append(notes, n...)
	}
	return worstE(fails, nil, notes), nil
}

func checkBinlogPerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.logFiles(ctx, "log_bin_basename", "binary log", true)
}

func checkRelayLogPerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.logFiles(ctx, "relay_log_basename", "relay log", true)
}

func checkSlowLogPerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.logFiles(ctx, "slow_query_log_file", "slow query log", false)
}

func checkGeneralLogPerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.logFiles(ctx, "general_log_file", "general log", false)
}

func checkSSLKeyPerms(ctx context.Context, a *auditor) (outcome, error) {
	key, err := a.pathVar(ctx, "ssl_key")
	if err != nil {
		return outcome{}, err
	}
	if key == "" {
		return notApplicable("ssl_key is not set (no TLS; see network checks)"), nil
	}
	fails, notes, err := a.serverFilePerms(key, "TLS private key", 0o600)
	if err != nil {
		return outcome{}, err
	}
	for _, v := range []string{"ssl_cert", "ssl_ca"} {
		p, err := a.pathVar(ctx, v)
		if err != nil || p == "" {
			continue
		}
		if st, uid, err := statOwner(p); err == nil && st.Mode().Perm()&0o022 != 0 {
			fails = append(fails, fileEv(p, st, uid, fmt.Sprintf("%s %s has mode %04o: others may replace it", v, p, st.Mode().Perm())))
		}
	}
	return worstE(fails, nil, notes), nil
}

// rootOnlyWritable fails path when anyone but root may write it: owned
// by another user, or group- or world-writable.
func rootOnlyWritable(path, what string) []Evidence {
	st, uid, err := statOwner(path)
	if err != nil {
		return []Evidence{{Text: fmt.Sprintf("%s %s: %v", what, path, err), File: path}}
	}
	var out []Evidence
	if uid != 0 {
		out = append(out, fileEv(path, st, uid, fmt.Sprintf("%s %s is owned by %s, who may change it", what, path, userName(uid))))
	}
	if st.Mode().Perm()&0o022 != 0 {
		out = append(out, fileEv(path, st, uid, fmt.Sprintf("%s %s has mode %04o: group or others may change it", what, path, st.Mode().Perm())))
	}
	return out
}

func checkPluginDirPerms(ctx context.Context, a *auditor) (outcome, error) {
	dir, err := a.variable(ctx, "plugin_dir")
	if err != nil {
		return outcome{}, err
	}
	dir = filepath.Clean(dir)
	st, uid, err := statOwner(dir)
	if err != nil {
		return outcome{}, fmt.Errorf("plugin_dir: %v (the audit must run on the server's host)", err)
	}
	fails := rootOnlyWritable(dir, "plugin directory")
	libs, _ := filepath.Glob(filepath.Join(dir, "*.so"))
	for _, l := range libs {
		fails = append(fails, rootOnlyWritable(l, "plugin")...)
	}
	return worstE(fails, nil, []Evidence{fileEv(dir, st, uid, fmt.Sprintf("%s and %d libraries inspected", describe(dir, st, uid), len(libs)))}), nil
}

// optionalVar reads a variable that exists only with a plugin loaded;
// ok is false when the server has no such variable.
func (a *auditor) optionalVar(ctx context.Context, name string) (string, bool, error) {
	rows, err := a.query(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = '"+strings.ToUpper(name)+"'", 1)
	if err != nil {
		// MySQL 5.7+ keeps variables in performance_schema.
		rows, err = a.query(ctx, "SELECT VARIABLE_VALUE FROM performance_schema.global_variables WHERE VARIABLE_NAME = '"+name+"'", 1)
		if err != nil {
			return "", false, err
		}
	}
	if len(rows) == 0 {
		return "", false, nil
	}
	return rows[0][0], true, nil
}

func (a *auditor) pluginFilePerms(ctx context.Context, vars []string, what string, max os.FileMode) (outcome, error) {
	for _, name := range vars {
		v, ok, err := a.optionalVar(ctx, name)
		if err != nil {
			return outcome{}, err
		}
		if !ok {
			continue
		}
		if v == "" {
			return notApplicable(name + " is empty"), nil
		}
		p := v
		if !filepath.IsAbs(p) {
			dir, err := a.dataDir(ctx)
			if err != nil {
				return outcome{}, err
			}
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return notApplicable(fmt.Sprintf("%s = %s does not exist yet", name, p)), nil
		}
		fails, notes, err := a.serverFilePerms(p, what, max)
		if err != nil {
			return outcome{}, err
		}
		return worstE(fails, nil, notes), nil
	}
	return notApplicable(fmt.Sprintf("the server has no %s (plugin not loaded)", strings.Join(vars, " or "))), nil
}

func checkAuditLogPerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.pluginFilePerms(ctx, []string{"server_audit_file_path", "audit_log_file"}, "audit log", 0o660)
}

func checkKeyFilePerms(ctx context.Context, a *auditor) (outcome, error) {
	return a.pluginFilePerms(ctx, []string{"file_key_management_filename", "keyring_file_data"}, "key file", 0o600)
}

// sortEv sorts evidence by text.
func sortEv(ev []Evidence) {
	sort.Slice(ev, func(i, j int) bool { return ev[i].Text < ev[j].Text })
}
