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

// privSet is what a grantee holds on *.*: each privilege (upper case,
// "GRANT OPTION" when grantable) maps to how it is held: "" directly, else
// the chain of roles it comes through ("outer > inner", or "PUBLIC").
type privSet map[string]string

// has reports whether p is held, ALL PRIVILEGES included.
func (ps privSet) has(p string) bool {
	_, ok := ps[p]
	if !ok {
		_, ok = ps["ALL PRIVILEGES"]
	}
	return ok
}

// via says how p is held ("" directly, else the role chain).
func (ps privSet) via(p string) string {
	if v, ok := ps[p]; ok {
		return v
	}
	return ps["ALL PRIVILEGES"]
}

// publicGrantee is how MariaDB's PUBLIC (privileges every account holds)
// appears among the grantees.
const publicGrantee = "PUBLIC"

// globalPrivs returns each login's global privileges, those it holds
// through roles included: granted roles are followed through roles
// granted to roles (MariaDB mysql.roles_mapping, MySQL mysql.role_edges),
// whether or not they are the default role, since an account may SET
// ROLE to any role it was granted; MySQL's mandatory_roles count for
// every account. Roles themselves are not grantees (a role no login holds
// gives no one anything), except MariaDB's PUBLIC, whose privileges every
// account holds: it is the grantee "PUBLIC", and each login also holds
// its privileges via "PUBLIC".
func (a *auditor) globalPrivs(ctx context.Context) (map[string]privSet, error) {
	if a.privs != nil || a.privsErr != nil {
		return a.privs, a.privsErr
	}
	m, err := a.readGlobalPrivs(ctx)
	if err != nil {
		a.privsErr = err
		return nil, err
	}
	a.privs = m
	return m, nil
}

func (a *auditor) readGlobalPrivs(ctx context.Context) (map[string]privSet, error) {
	// USER_PRIVILEGES shows a low-privileged account only its own rows:
	// without the account list (mysql.global_priv), a pass would lie.
	if _, err := a.accounts(ctx); err != nil {
		return nil, fmt.Errorf("cannot tell who holds which privileges: %v", err)
	}
	rows, err := a.cached(ctx, userPrivsSQL, 3)
	if err != nil {
		return nil, err
	}
	direct := map[string]privSet{}
	add := func(g, p string) {
		g = normAccount(g)
		if direct[g] == nil {
			direct[g] = privSet{}
		}
		direct[g][strings.ToUpper(p)] = ""
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
		if !acc.Role && direct[acc.name()] == nil {
			missing = append(missing, acc.name())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("information_schema.USER_PRIVILEGES shows no privileges for %d of %d accounts (%s): the auditing account needs SELECT on the mysql database to see everyone's privileges", len(missing), len(a.accts), strings.Join(missing, ", "))
	}
	g, err := a.roleGraph(ctx, direct)
	if err != nil {
		return nil, err
	}
	a.roleChains = map[string]map[string]string{}
	out := map[string]privSet{}
	for _, acc := range a.accts {
		if acc.Role {
			continue
		}
		ps := privSet{}
		for p, v := range direct[acc.name()] {
			ps[p] = v
		}
		// Breadth first, so that each privilege names the shortest chain.
		type step struct{ role, chain string }
		var queue []step
		for _, r := range append(append([]string(nil), g.edges[acc.name()]...), g.everyone...) {
			queue = append(queue, step{r, r})
		}
		seen := map[string]bool{}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			if seen[s.role] {
				continue
			}
			seen[s.role] = true
			if a.roleChains[s.role] == nil {
				a.roleChains[s.role] = map[string]string{}
			}
			a.roleChains[s.role][acc.name()] = s.chain
			for p := range g.privs[s.role] {
				if _, ok := ps[p]; !ok {
					ps[p] = s.chain
				}
			}
			for _, r := range g.edges[s.role] {
				queue = append(queue, step{r, s.chain + " > " + r})
			}
		}
		out[acc.name()] = ps
	}
	if pub := g.privs[publicGrantee]; len(pub) > 0 {
		out[publicGrantee] = privSet{}
		for p := range pub {
			out[publicGrantee][p] = ""
		}
	}
	return out, nil
}

// roleGraph is who was granted which role, and what each role holds.
type roleGraph struct {
	// edges maps a grantee (an account name, or a MariaDB role's name) to
	// the roles granted to it.
	edges map[string][]string
	// privs are each role's own global privileges.
	privs map[string]privSet
	// everyone are the roles every account holds (MariaDB PUBLIC, MySQL
	// mandatory_roles).
	everyone []string
}

func (a *auditor) roleGraph(ctx context.Context, direct map[string]privSet) (*roleGraph, error) {
	g := &roleGraph{edges: map[string][]string{}, privs: map[string]privSet{}}
	if a.flavor(ctx) == MySQL {
		// Roles are accounts: their privileges are in USER_PRIVILEGES.
		rows, err := a.query(ctx, "SELECT FROM_USER, FROM_HOST, TO_USER, TO_HOST FROM mysql.role_edges", 4)
		if err != nil {
			return nil, fmt.Errorf("cannot tell who holds privileges through roles: %v", err)
		}
		for _, r := range rows {
			role, to := account{User: r[0], Host: r[1]}.name(), account{User: r[2], Host: r[3]}.name()
			g.edges[to] = append(g.edges[to], role)
			g.privs[role] = direct[role]
		}
		if v, err := a.variable(ctx, "mandatory_roles"); err == nil && v != Null {
			for _, r := range strings.Split(v, ",") {
				if strings.TrimSpace(r) == "" {
					continue
				}
				role := normAccount(r)
				g.everyone = append(g.everyone, role)
				g.privs[role] = direct[role]
			}
		}
		return g, nil
	}
	maps, err := a.query(ctx, "SELECT User, Host, Role FROM mysql.roles_mapping", 3)
	if err != nil {
		return nil, fmt.Errorf("cannot tell who holds privileges through roles: %v", err)
	}
	need := map[string]bool{}
	for _, r := range maps {
		to := r[0] // a role granted to a role has an empty host
		if r[1] != "" {
			to = account{User: r[0], Host: r[1]}.name()
		}
		g.edges[to] = append(g.edges[to], r[2])
		need[r[2]] = true
	}
	for _, acc := range a.accts {
		if acc.Role && acc.User == publicGrantee && acc.Host == "" {
			need[publicGrantee] = true
			g.everyone = append(g.everyone, publicGrantee)
		}
	}
	var roles []string
	for r := range need {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		ps, err := a.rolePrivs(ctx, role)
		if err != nil {
			return nil, fmt.Errorf("cannot read the privileges of role %s: %v", role, err)
		}
		g.privs[role] = privSet{}
		for _, p := range ps {
			g.privs[role][strings.ToUpper(p)] = ""
		}
	}
	return g, nil
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

var grantRe = regexp.MustCompile("^GRANT (.+) ON \\*\\.\\* TO (`(?:[^`]|``)*`|'(?:[^']|'')*'|\\S+)")

// rolePrivs reads a role's own global privileges from SHOW GRANTS, which
// also lists the grants of the roles granted to it: those are left to
// the caller, which follows role grants itself.
func (a *auditor) rolePrivs(ctx context.Context, role string) ([]string, error) {
	rows, err := a.query(ctx, "SHOW GRANTS FOR '"+strings.ReplaceAll(role, "'", "''")+"'", 1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		m := grantRe.FindStringSubmatch(r[0])
		if m == nil || unquoteName(m[2]) != role {
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

// unquoteName undoes SHOW GRANTS quoting of a role name (`r`, 'r', r).
func unquoteName(s string) string {
	if len(s) >= 2 && (s[0] == '`' || s[0] == '\'') && s[len(s)-1] == s[0] {
		q := string(s[0])
		return strings.ReplaceAll(s[1:len(s)-1], q+q, q)
	}
	return s
}

// holders fails every non-admin grantee holding one of privs globally,
// directly or through a role (MariaDB's PUBLIC is reported once, as the
// grantee PUBLIC, not again for every account).
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
		var held, names, roles []string
		for _, p := range privs {
			if !ps.has(p) {
				continue
			}
			via := ps.via(p)
			switch {
			case via == publicGrantee:
				continue
			case via != "":
				held = append(held, p+" (through role "+via+")")
				roles = append(roles, via)
			default:
				held = append(held, p)
			}
			names = append(names, p)
		}
		if len(held) == 0 {
			continue
		}
		who := g
		if g == publicGrantee {
			who = "PUBLIC (every account)"
		}
		fails = append(fails, Evidence{Text: fmt.Sprintf("%s holds %s on *.* and is not an administrator (audit.admins)", who, strings.Join(held, ", ")),
			Account: g, Value: strings.Join(names, ","), Role: strings.Join(uniq(roles), ",")})
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: "administrators: " + strings.Join(a.t.Admins, ", ")}}), nil
}

// uniq returns ss without repeats, in order.
func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// roleHolders returns the non-administrator logins that hold the grantee
// user@host of a mysql.db row through roles, when it is a role (MariaDB:
// an empty host; MySQL: an account granted to others), each with the
// role chain. Call it after globalPrivs.
func (a *auditor) roleHolders(user, host string) []Evidence {
	if host == "" && user == publicGrantee {
		return nil // reported as PUBLIC (every account)
	}
	key := account{User: user, Host: host}.name()
	if host == "" {
		key = user
	}
	var out []Evidence
	for acc, chain := range a.roleChains[key] {
		if !a.isAdmin(acc) {
			out = append(out, Evidence{Account: acc, Role: chain})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out
}

// isRoleGrantee reports whether the grantee of a mysql.db row is a role
// (not PUBLIC): a role gives its privileges only to those holding it,
// whom roleHolders names.
func (a *auditor) isRoleGrantee(user, host string) bool {
	if host == "" {
		return user != publicGrantee
	}
	for _, acc := range a.accts {
		if acc.User == user && acc.Host == host {
			return acc.Role
		}
	}
	return false
}

// grantName names a grantee of mysql.db that is not a role: an account
// or PUBLIC.
func grantName(user, host string) string {
	if host == "" && user == publicGrantee {
		return "PUBLIC (every account)"
	}
	return account{User: user, Host: host}.name()
}

func checkFullAccess(ctx context.Context, a *auditor) (outcome, error) {
	o, err := a.holders(ctx, "SELECT", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE")
	if err != nil {
		return o, err
	}
	rows, err := a.query(ctx, "SELECT User, Host FROM mysql.db WHERE Db = 'mysql' AND (Select_priv = 'Y' OR Insert_priv = 'Y' OR Update_priv = 'Y' OR Delete_priv = 'Y' OR Drop_priv = 'Y' OR Alter_priv = 'Y' OR Create_priv = 'Y')", 2)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, r := range rows {
		n := account{User: r[0], Host: r[1]}.name()
		if !a.isRoleGrantee(r[0], r[1]) && !a.isAdmin(n) {
			fails = append(fails, Evidence{Text: grantName(r[0], r[1]) + " has privileges on the mysql schema (the privilege tables)", Account: n})
		}
		for _, h := range a.roleHolders(r[0], r[1]) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s has privileges on the mysql schema through role %s", h.Account, h.Role), Account: h.Account, Role: h.Role})
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
	o, err := a.holders(ctx, "GRANT OPTION")
	if err != nil {
		return o, err
	}
	rows, err := a.query(ctx, "SELECT User, Host, Db FROM mysql.db WHERE Grant_priv = 'Y'", 3)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, r := range rows {
		n := account{User: r[0], Host: r[1]}.name()
		if !a.isRoleGrantee(r[0], r[1]) && !a.isAdmin(n) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s may grant its privileges on `%s`", grantName(r[0], r[1]), r[2]), Account: n})
		}
		for _, h := range a.roleHolders(r[0], r[1]) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s may grant privileges on `%s` through role %s", h.Account, r[2], h.Role), Account: h.Account, Role: h.Role})
		}
	}
	if len(fails) > 0 {
		o.result = Fail
		o.evidence = append(fails, o.evidence...)
	}
	return o, nil
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
		for _, p := range append([]string{"CREATE USER", "GRANT OPTION", "FILE", "SHUTDOWN"}, superLike...) {
			if ps.has(p) {
				if via := ps.via(p); via != "" {
					p += " (through role " + via + ")"
				}
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
		if !ps.has("REPLICATION SLAVE") || a.isAdmin(g) {
			continue
		}
		for _, p := range superLike {
			if ps.has(p) {
				fails = append(fails, Evidence{Text: fmt.Sprintf("replication user %s also holds %s", g, p), Account: g})
				break
			}
		}
	}
	sortEv(fails)
	return worstE(fails, nil, nil), nil
}
