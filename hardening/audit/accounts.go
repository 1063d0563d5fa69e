package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// account is one row of mysql.global_priv (or mysql.user).
type account struct {
	User, Host string
	// Locked is ACCOUNT LOCK; Role is a role, not a login.
	Locked, Role bool
	// Auth are the ways the account may authenticate (IDENTIFIED VIA a
	// OR b ...): any one of them lets a client in.
	Auth []authMethod
	// PwChanged is when the password last changed (Unix seconds): 0 when
	// it was expired (ALTER USER ... PASSWORD EXPIRE), -1 when unknown.
	// PwLifetime is the account's own password lifetime in days: -1 for
	// the server's default_password_lifetime, 0 for never.
	PwChanged  int64
	PwLifetime int
}

// authMethod is one authentication alternative.
type authMethod struct {
	Plugin string
	// String is the authentication_string: a password hash for password
	// plugins.
	String string
}

func (a account) name() string { return fmt.Sprintf("'%s'@'%s'", a.User, a.Host) }

// privJSON is the part of mysql.global_priv.Priv the checks use.
type privJSON struct {
	Plugin        *string `json:"plugin"`
	AuthString    string  `json:"authentication_string"`
	AccountLocked bool    `json:"account_locked"`
	PwChanged     *int64  `json:"password_last_changed"`
	PwLifetime    *int    `json:"password_lifetime"`
	IsRole        bool    `json:"is_role"`
	AuthOr        []struct {
		Plugin     *string `json:"plugin"`
		AuthString string  `json:"authentication_string"`
	} `json:"auth_or"`
}

// parsePriv decodes a global_priv.Priv value. The top-level plugin and
// authentication_string are one alternative; auth_or, when present, lists
// all alternatives, with {} standing for the top-level one.
func parsePriv(user, host, priv string) (account, error) {
	acc := account{User: user, Host: host, PwChanged: -1, PwLifetime: -1}
	var p privJSON
	if err := json.Unmarshal([]byte(priv), &p); err != nil {
		return acc, fmt.Errorf("mysql.global_priv: account '%s'@'%s': bad Priv JSON: %v", user, host, err)
	}
	acc.Locked, acc.Role = p.AccountLocked, p.IsRole
	if p.PwChanged != nil {
		acc.PwChanged = *p.PwChanged
	}
	if p.PwLifetime != nil {
		acc.PwLifetime = *p.PwLifetime
	}
	top := authMethod{Plugin: "mysql_native_password", String: p.AuthString}
	if p.Plugin != nil {
		top.Plugin = *p.Plugin
	}
	if len(p.AuthOr) == 0 {
		if !acc.Role {
			acc.Auth = []authMethod{top}
		}
		return acc, nil
	}
	for _, alt := range p.AuthOr {
		if alt.Plugin == nil {
			acc.Auth = append(acc.Auth, top)
			continue
		}
		acc.Auth = append(acc.Auth, authMethod{Plugin: *alt.Plugin, String: alt.AuthString})
	}
	return acc, nil
}

// accounts reads the accounts from mysql.global_priv (MariaDB 10.4+) or,
// if that fails, from mysql.user (older MariaDB, MySQL), which shows one
// authentication method per account and, on MariaDB, no account locks.
func (a *auditor) accounts(ctx context.Context) ([]account, error) {
	if a.acctsOK {
		return a.accts, a.acctsErr
	}
	a.acctsOK = true
	rows, err := a.query(ctx, "SELECT User, Host, Priv FROM mysql.global_priv", 3)
	if err == nil {
		a.acctsSrc = "mysql.global_priv"
		for _, r := range rows {
			acc, err := parsePriv(r[0], r[1], r[2])
			if err != nil {
				a.acctsErr = err
				return nil, err
			}
			a.accts = append(a.accts, acc)
		}
		if len(a.accts) == 0 {
			a.acctsErr = errors.New("mysql.global_priv lists no accounts, not even the one auditing")
		}
		return a.accts, a.acctsErr
	}
	rows, err2 := a.query(ctx, "SELECT User, Host, plugin, authentication_string FROM mysql.user", 4)
	if err2 != nil {
		a.acctsErr = fmt.Errorf("cannot read accounts: %v; %v", err, err2)
		return nil, a.acctsErr
	}
	a.acctsSrc = "mysql.user"
	for _, r := range rows {
		plugin := r[2]
		if plugin == "" || plugin == Null {
			plugin = "mysql_native_password"
		}
		auth := r[3]
		if auth == Null {
			auth = ""
		}
		a.accts = append(a.accts, account{User: r[0], Host: r[1], Auth: []authMethod{{Plugin: plugin, String: auth}}, PwChanged: -1, PwLifetime: -1})
	}
	if len(a.accts) == 0 {
		a.acctsErr = errors.New("mysql.user lists no accounts, not even the one auditing")
		return nil, a.acctsErr
	}
	// Optional columns: is_role (MariaDB), account_locked (MySQL 5.7+).
	a.markAccounts(ctx, "SELECT User, Host FROM mysql.user WHERE is_role = 'Y'", func(acc *account) { acc.Role = true })
	a.markAccounts(ctx, "SELECT User, Host FROM mysql.user WHERE account_locked = 'Y'", func(acc *account) { acc.Locked = true })
	// MySQL roles are accounts, locked by CREATE ROLE: those granted to
	// someone, or to everyone (mandatory_roles), are roles, not logins.
	role := func(acc *account) {
		if acc.Locked {
			acc.Role = true
		}
	}
	a.markAccounts(ctx, "SELECT FROM_USER, FROM_HOST FROM mysql.role_edges", role)
	if v, err := a.variable(ctx, "mandatory_roles"); err == nil && v != Null {
		for _, r := range strings.Split(v, ",") {
			n := normAccount(r)
			for i := range a.accts {
				if a.accts[i].name() == n {
					role(&a.accts[i])
				}
			}
		}
	}
	// Password ages (MySQL; MariaDB's mysql.user view has no such
	// columns, its global_priv JSON has them).
	if rows, err := a.query(ctx, pwAgeSQL, 5); err == nil {
		for _, r := range rows {
			for i := range a.accts {
				acc := &a.accts[i]
				if acc.User != r[0] || acc.Host != r[1] {
					continue
				}
				if n, err := strconv.ParseInt(r[3], 10, 64); err == nil {
					acc.PwChanged = n
				}
				if n, err := strconv.Atoi(r[4]); err == nil {
					acc.PwLifetime = n
				}
				if r[2] == "Y" {
					acc.PwChanged = 0
				}
			}
		}
	}
	return a.accts, nil
}

// pwAgeSQL reads MySQL's password expiry columns: expired, last change
// (Unix seconds, -1 unknown) and lifetime (-1 for the default).
const pwAgeSQL = "SELECT User, Host, password_expired, IFNULL(UNIX_TIMESTAMP(password_last_changed), -1), IFNULL(password_lifetime, -1) FROM mysql.user"

// markAccounts applies mark to the accounts sql lists; a failing query
// (a column this server does not have) changes nothing.
func (a *auditor) markAccounts(ctx context.Context, sql string, mark func(*account)) {
	rows, err := a.query(ctx, sql, 2)
	if err != nil {
		return
	}
	for _, r := range rows {
		for i := range a.accts {
			if a.accts[i].User == r[0] && a.accts[i].Host == r[1] {
				mark(&a.accts[i])
			}
		}
	}
}

// logins returns the accounts a client can log in as: not roles, not
// locked.
func logins(accts []account) []account {
	var out []account
	for _, acc := range accts {
		if !acc.Role && !acc.Locked {
			out = append(out, acc)
		}
	}
	return out
}

func checkAnonymous(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var bad []string
	for _, acc := range accts {
		if acc.User == "" && !acc.Role {
			s := acc.name()
			if acc.Locked {
				s += " (locked, but still matched before named accounts with less specific hosts)"
			}
			bad = append(bad, s)
		}
	}
	sort.Strings(bad)
	return worst(bad, nil, nil), nil
}

// isLocalHost reports whether host names only the local machine.
func isLocalHost(host string) bool {
	switch strings.ToLower(host) {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

func checkRootRemote(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var bad []string
	for _, acc := range logins(accts) {
		if acc.User == "root" && !isLocalHost(acc.Host) {
			bad = append(bad, acc.name())
		}
	}
	sort.Strings(bad)
	return worst(bad, nil, nil), nil
}

// passwordPlugins are the server plugins that authenticate with a password
// whose hash is the authentication_string; an empty string is an empty
// password (for ed25519, MariaDB 10.11 stores the hash of an empty password as an empty string too).
var passwordPlugins = map[string]bool{
	"mysql_native_password": true,
	"mysql_old_password":    true,
	"ed25519":               true,
	"caching_sha2_password": true,
	"sha256_password":       true,
	"parsec":                true,
}

func checkEmptyPassword(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var bad []string
	for _, acc := range logins(accts) {
		for _, m := range acc.Auth {
			if passwordPlugins[m.Plugin] && m.String == "" {
				bad = append(bad, fmt.Sprintf("%s (%s with an empty password)", acc.name(), m.Plugin))
				break
			}
		}
	}
	sort.Strings(bad)
	return worst(bad, nil, nil), nil
}

// isNativeHash reports whether s is a mysql_native_password hash that a
// password can match: '*' and 40 hex digits. Anything else, such as the
// "invalid" that mariadb-install-db gives root, matches no password.
func isNativeHash(s string) bool {
	if len(s) != 41 || s[0] != '*' {
		return false
	}
	for _, c := range s[1:] {
		if !strings.ContainsRune("0123456789ABCDEFabcdef", c) {
			return false
		}
	}
	return true
}

func checkWeakPlugin(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails, warns []string
	for _, acc := range logins(accts) {
		for _, m := range acc.Auth {
			switch {
			case m.Plugin == "mysql_old_password" && m.String != "":
				fails = append(fails, acc.name()+" (mysql_old_password)")
			case m.Plugin == "mysql_native_password" && len(m.String) == 16:
				// A pre-4.1 hash kept under the native plugin (old MySQL).
				fails = append(fails, acc.name()+" (pre-4.1 password hash)")
			case m.Plugin == "mysql_native_password" && isNativeHash(m.String):
				fails = append(fails, acc.name()+" (mysql_native_password)")
			}
		}
	}
	sort.Strings(fails)
	sort.Strings(warns)
	return worst(fails, warns, nil), nil
}

// hasWildcard reports whether a database pattern of mysql.db has an
// unescaped '%' or '_'.
func hasWildcard(db string) bool {
	for i := 0; i < len(db); i++ {
		switch db[i] {
		case '\\':
			i++
		case '%', '_':
			return true
		}
	}
	return false
}

func checkTestDB(ctx context.Context, a *auditor) (outcome, error) {
	// information_schema.SCHEMATA lists only the databases the auditing
	// account may use.
	if err := a.needOwn(ctx, "to see every database in information_schema.SCHEMATA", "SHOW DATABASES"); err != nil {
		return outcome{}, err
	}
	var bad []string
	dbs, err := a.query(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE LOWER(SCHEMA_NAME) = 'test'", 1)
	if err != nil {
		return outcome{}, err
	}
	for _, r := range dbs {
		bad = append(bad, fmt.Sprintf("database `%s` exists", r[0]))
	}
	grants, err := a.query(ctx, "SELECT Db, User, Host FROM mysql.db WHERE LOWER(Db) LIKE 'test%'", 3)
	if err != nil {
		return outcome{}, err
	}
	for _, r := range grants {
		db := r[0]
		if len(db) < 4 {
			continue
		}
		if strings.EqualFold(db, "test") || hasWildcard(db[4:]) {
			bad = append(bad, fmt.Sprintf("mysql.db grants '%s'@'%s' access to databases matching `%s`", r[1], r[2], db))
		}
	}
	sort.Strings(bad)
	return worst(bad, nil, nil), nil
}

// isIPHost reports whether an account host matches by IP address alone
// (an IP, an IP pattern with % or _, an IP/netmask, or '%'), so that
// matching it needs no DNS. 'localhost' is handled by the caller.
func isIPHost(host string) bool {
	if host == "" || host == "%" || strings.Contains(host, "/") || net.ParseIP(host) != nil {
		return true
	}
	if strings.Trim(host, "0123456789.%_") == "" {
		return true
	}
	return strings.Contains(host, ":") && strings.Trim(strings.ToLower(host), "0123456789abcdef:.%_") == ""
}

// listed reports whether an account is in list (forms as Target.Admins).
func listed(list []string, name string) bool {
	name = normAccount(name)
	for _, x := range list {
		if normAccount(x) == name {
			return true
		}
	}
	return false
}

// checkUnusedAccounts stands in for "no login since ...", which MariaDB
// does not record without the audit plugin: a login that is not listed as
// in use, or whose password has expired, is unused and must be locked.
func checkUnusedAccounts(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var now int64 = -1
	def := -1
	for _, acc := range accts {
		if acc.PwChanged > 0 {
			v, err := a.value(ctx, "SELECT UNIX_TIMESTAMP()")
			if err != nil {
				return outcome{}, err
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				now = int64(f)
			}
			if v, err := a.variable(ctx, "default_password_lifetime"); err == nil {
				if n, err := strconv.Atoi(v); err == nil {
					def = n
				}
			}
			break
		}
	}
	var fails, warns []Evidence
	n := 0
	for _, acc := range logins(accts) {
		n++
		name := acc.name()
		life := acc.PwLifetime
		if life < 0 {
			life = def
		}
		switch {
		case acc.PwChanged == 0:
			fails = append(fails, Evidence{Text: name + " has an expired password (PASSWORD EXPIRE) and is not locked: no one has set a new one, so no one uses it", Account: name})
			continue
		case acc.PwChanged > 0 && now > 0 && life > 0 && now-acc.PwChanged > int64(life)*86400:
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s has a password %d days old, past its lifetime of %d days, and is not locked", name, (now-acc.PwChanged)/86400, life), Account: name})
			continue
		}
		if a.isAdmin(name) || listed(a.t.InUse, name) {
			continue
		}
		if len(a.t.InUse) > 0 {
			fails = append(fails, Evidence{Text: name + " is neither an administrator (audit.admins) nor an account in use (audit.accounts), and is not locked", Account: name})
		} else {
			warns = append(warns, Evidence{Text: name + " is not an administrator and not locked: list the accounts in use in audit.accounts to check the others are locked", Account: name})
		}
	}
	sortEv(fails)
	sortEv(warns)
	return worstE(fails, warns, []Evidence{{Text: fmt.Sprintf("%d unlocked logins inspected", n)}}), nil
}
