package audit

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Section 5: who holds which privileges, against Target.Admins.

// normAccount turns 'u'@'h', `u`@`h` or u@h into 'u'@'h'.
func normAccount(s string) string {
	s = strings.TrimSpace(s)
	u, h := s, "%"
	if i := strings.LastIndex(s, "@"); i >= 0 {
		u, h = s[:i], s[i+1:]
	}
	trim := func(x string) string { return strings.Trim(strings.TrimSpace(x), "'`\"") }
	return account{User: trim(u), Host: trim(h)}.name()
}

// isAdmin reports whether an account is in Target.Admins.
func (a *auditor) isAdmin(name string) bool {
	name = normAccount(name)
	for _, ad := range a.t.Admins {
		if normAccount(ad) == name {
			return true
		}
	}
	return false
}

// globalPrivs returns each grantee's global privileges (upper case; a
// "GRANT OPTION" entry when grantable), roles' privileges added to the
// accounts granted the role (MariaDB roles_mapping, one level deep).
func (a *auditor) globalPrivs(ctx context.Context) (map[string]map[string]bool, error) {
	if a.privs != nil || a.privsErr != nil {
		return a.privs, a.privsErr
	}
	// USER_PRIVILEGES shows a low-privileged account only its own rows:
	// without the account list (mysql.global_priv), a pass would lie.
	if _, err := a.accounts(ctx); err != nil {
		a.privsErr = fmt.Errorf("cannot tell who holds which privileges: %v", err)
		return nil, a.privsErr
	}
	rows, err := a.cached(ctx, userPrivsSQL, 3)
	if err != nil {
		a.privsErr = err
		return nil, err
	}
	m := map[string]map[string]bool{}
	add := func(g, p string) {
		g = normAccount(g)
		if m[g] == nil {
			m[g] = map[string]bool{}
		}
		m[g][strings.ToUpper(p)] = true
	}
	for _, r := range rows {
		add(r[0], r[1])
		if r[2] == "YES" {
			add(r[0], "GRANT OPTION")
		}
	}
	// USER_PRIVILEGES shows every account (those without global
	// privileges as USAGE) only to an account with SELECT on the mysql
	// database; table grants on mysql.global_priv and mysql.user let an
	// account read the account list but show it only its own rows.
	var missing []string
	for _, acc := range a.accts {
		if !acc.Role && m[acc.name()] == nil {
			missing = append(missing, acc.name())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		a.privsErr = fmt.Errorf("information_schema.USER_PRIVILEGES shows no privileges for %d of %d accounts (%s): the auditing account needs SELECT on the mysql database to see everyone's privileges", len(missing), len(a.accts), strings.Join(missing, ", "))
		return nil, a.privsErr
	}
	if a.flavor(ctx) != MySQL {
		maps, err := a.query(ctx, "SELECT User, Host, Role FROM mysql.roles_mapping", 3)
		if err != nil {
			a.privsErr = fmt.Errorf("cannot tell who holds privileges through roles: %v", err)
			return nil, a.privsErr
		}
		rolePrivs := map[string][]string{}
		for _, r := range maps {
			role := r[2]
			if _, ok := rolePrivs[role]; !ok {
				ps, err := a.rolePrivs(ctx, role)
				if err != nil {
					a.privsErr = fmt.Errorf("cannot read the privileges of role %s: %v", role, err)
					return nil, a.privsErr
				}
				rolePrivs[role] = ps
			}
			for _, p := range rolePrivs[role] {
				add(account{User: r[0], Host: r[1]}.name(), p)
			}
		}
	}
	a.privs = m
	return m, nil
}

const userPrivsSQL = "SELECT GRANTEE, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES"

// ownPrivs returns the global privileges of the auditing account
// (information_schema always shows an account its own), upper case; all
// is true when the server runs without privilege checks.
func (a *auditor) ownPrivs(ctx context.Context) (privs map[string]bool, all bool, err error) {
	cu, err := a.value(ctx, "SELECT CURRENT_USER()")
	if err != nil {
		return nil, false, err
	}
	if cu == "@" || strings.Contains(cu, "skip-grants") {
		return nil, true, nil
	}
	rows, err := a.cached(ctx, userPrivsSQL, 3)
	if err != nil {
		return nil, false, err
	}
	me := normAccount(cu)
	privs = map[string]bool{}
	for _, r := range rows {
		if normAccount(r[0]) == me {
			privs[strings.ToUpper(r[1])] = true
		}
	}
	return privs, false, nil
}

// needOwn fails unless the auditing account holds every privilege in
// need globally; why says what they are needed for.
func (a *auditor) needOwn(ctx context.Context, why string, need ...string) error {
	privs, all, err := a.ownPrivs(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the auditing account's own privileges: %v", err)
	}
	if all {
		return nil
	}
	var lack []string
	for _, p := range need {
		if !privs[p] {
			lack = append(lack, p)
		}
	}
	if len(lack) > 0 {
		return fmt.Errorf("the auditing account lacks %s on *.*, needed %s", strings.Join(lack, ", "), why)
	}
	return nil
}

var grantRe = regexp.MustCompile(`^GRANT (.+) ON \*\.\* TO `)

// rolePrivs reads a role's global privileges from SHOW GRANTS.
func (a *auditor) rolePrivs(ctx context.Context, role string) ([]string, error) {
	rows, err := a.query(ctx, "SHOW GRANTS FOR '"+strings.ReplaceAll(role, "'", "''")+"'", 1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		m := grantRe.FindStringSubmatch(r[0])
		if m == nil {
			continue
		}
		for _, p := range strings.Split(m[1], ",") {
			out = append(out, strings.TrimSpace(p))
		}
		if strings.Contains(r[0], "WITH GRANT OPTION") {
			out = append(out, "GRANT OPTION")
		}
	}
	return out, nil
}

// holders fails every non-admin grantee holding one of privs globally.
func (a *auditor) holders(ctx context.Context, privs ...string) (outcome, error) {
	m, err := a.globalPrivs(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for g, ps := range m {
		if a.isAdmin(g) {
			continue
		}
		var held []string
		for _, p := range privs {
			if ps[p] || ps["ALL PRIVILEGES"] {
				held = append(held, p)
			}
		}
		if len(held) > 0 {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s holds %s on *.* and is not an administrator (audit.admins)", g, strings.Join(held, ", ")), Account: g, Value: strings.Join(held, ",")})
		}
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: "administrators: " + strings.Join(a.t.Admins, ", ")}}), nil
}

func checkFullAccess(ctx context.Context, a *auditor) (outcome, error) {
	return a.holdersAndDB(ctx, []string{"SELECT", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE"},
		"SELECT User, Host FROM mysql.db WHERE Db = 'mysql' AND (Select_priv = 'Y' OR Insert_priv = 'Y' OR Update_priv = 'Y' OR Delete_priv = 'Y' OR Drop_priv = 'Y' OR Alter_priv = 'Y' OR Create_priv = 'Y')", 2,
		func(acct string, _ []string) string {
			return acct + " has privileges on the mysql schema (the privilege tables)"
		})
}

// holdersAndDB is holders of privs, failed also by the non-administrators
// that sql (User, Host, ... of mysql.db) finds, each described by text
// from its account name and row.
func (a *auditor) holdersAndDB(ctx context.Context, privs []string, sql string, cols int, text func(acct string, row []string) string) (outcome, error) {
	o, err := a.holders(ctx, privs...)
	if err != nil {
		return o, err
	}
	rows, err := a.query(ctx, sql, cols)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, r := range rows {
		n := account{User: r[0], Host: r[1]}.name()
		if !a.isAdmin(n) {
			fails = append(fails, Evidence{Text: text(n, r), Account: n})
		}
	}
	if len(fails) > 0 {
		o.result = Fail
		o.evidence = append(fails, o.evidence...)
	}
	return o, nil
}

func checkFilePriv(ctx context.Context, a *auditor) (outcome, error) { return a.holders(ctx, "FILE") }

func checkProcessPriv(ctx context.Context, a *auditor) (outcome, error) {
	return a.holders(ctx, "PROCESS")
}

// superLike are SUPER and the privileges MariaDB 10.5+ split out of it.
var superLike = []string{"SUPER", "BINLOG ADMIN", "BINLOG REPLAY", "CONNECTION ADMIN", "FEDERATED ADMIN", "READ_ONLY ADMIN", "REPLICATION MASTER ADMIN", "REPLICATION SLAVE ADMIN", "SET USER", "SYSTEM_VARIABLES_ADMIN", "SYSTEM_USER"}

func checkSuperPriv(ctx context.Context, a *auditor) (outcome, error) {
	return a.holders(ctx, superLike...)
}

func checkShutdownPriv(ctx context.Context, a *auditor) (outcome, error) {
	return a.holders(ctx, "SHUTDOWN")
}

func checkCreateUserPriv(ctx context.Context, a *auditor) (outcome, error) {
	return a.holders(ctx, "CREATE USER")
}

func checkGrantOption(ctx context.Context, a *auditor) (outcome, error) {
	return a.holdersAndDB(ctx, []string{"GRANT OPTION"}, "SELECT User, Host, Db FROM mysql.db WHERE Grant_priv = 'Y'", 3,
		func(acct string, r []string) string {
			return fmt.Sprintf("%s may grant its privileges on `%s`", acct, r[2])
		})
}

func checkReplSlavePriv(ctx context.Context, a *auditor) (outcome, error) {
	return a.holders(ctx, "REPLICATION SLAVE")
}

func checkDefinerAdmins(ctx context.Context, a *auditor) (outcome, error) {
	if _, err := a.globalPrivs(ctx); err != nil {
		return outcome{}, err
	}
	// information_schema shows only the objects the auditing account
	// may use.
	if err := a.needOwn(ctx, "to see every routine, view, trigger and event in information_schema", "SELECT", "SHOW VIEW", "TRIGGER", "EVENT"); err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, q := range []struct{ kind, sql string }{
		{"routine", "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES WHERE SECURITY_TYPE = 'DEFINER'"},
		{"view", "SELECT TABLE_SCHEMA, TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE SECURITY_TYPE = 'DEFINER'"},
		{"trigger", "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS"},
		{"event", "SELECT EVENT_SCHEMA, EVENT_NAME, DEFINER FROM information_schema.EVENTS"},
	} {
		rows, err := a.query(ctx, q.sql, 3)
		if err != nil {
			return outcome{}, err
		}
		for _, r := range rows {
			if r[0] == "sys" || r[0] == "mysql" || r[0] == "information_schema" || r[0] == "performance_schema" {
				continue
			}
			if a.isAdmin(r[2]) {
				fails = append(fails, Evidence{Text: fmt.Sprintf("%s `%s`.`%s` runs with the rights of the administrator %s", q.kind, r[0], r[1], normAccount(r[2])), Account: normAccount(r[2])})
			}
		}
	}
	sortEv(fails)
	return worstE(fails, nil, nil), nil
}

// unixSocketAdmins lists logins that may authenticate with unix_socket
// and hold SUPER-like privileges, ALL, or CREATE USER.
func checkUnixSocketAdmins(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	m, err := a.globalPrivs(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, acc := range logins(accts) {
		sock := false
		for _, au := range acc.Auth {
			sock = sock || au.Plugin == "unix_socket" || au.Plugin == "auth_socket"
		}
		if !sock {
			continue
		}
		ps := m[acc.name()]
		var held []string
		for _, p := range append([]string{"ALL PRIVILEGES", "CREATE USER", "GRANT OPTION", "FILE", "SHUTDOWN"}, superLike...) {
			if ps[p] {
				held = append(held, p)
			}
		}
		if len(held) > 0 {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s logs in through unix_socket (no password: the OS user is enough) and holds %s", acc.name(), strings.Join(held, ", ")), Account: acc.name()})
		}
	}
	sort.Slice(fails, func(i, j int) bool { return fails[i].Text < fails[j].Text })
	return worstE(fails, nil, nil), nil
}

func checkReplUserSuper(ctx context.Context, a *auditor) (outcome, error) {
	m, err := a.globalPrivs(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for g, ps := range m {
		if !ps["REPLICATION SLAVE"] || a.isAdmin(g) {
			continue
		}
		for _, p := range superLike {
			if ps[p] {
				fails = append(fails, Evidence{Text: fmt.Sprintf("replication user %s also holds %s", g, p), Account: g})
				break
			}
		}
	}
	sortEv(fails)
	return worstE(fails, nil, nil), nil
}
