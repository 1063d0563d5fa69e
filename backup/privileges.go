package backup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// RestorePrivileges are the privileges a logical restore needs on every
// database it writes (ON db.*, or ON *.* for a backup of all databases):
// the statements mariadb-dump writes with --routines --events --triggers
// are DROP/CREATE TABLE, LOCK TABLES (which also needs SELECT), ALTER
// TABLE ... DISABLE KEYS, INSERT, CREATE DATABASE and ALTER DATABASE,
// CREATE VIEW, CREATE TRIGGER, DROP/CREATE PROCEDURE and FUNCTION
// (ALTER ROUTINE, CREATE ROUTINE) and CREATE EVENT.
//
// Objects whose DEFINER is another account (a view, routine, trigger or
// event made by root) also need the global SET USER privilege (or SUPER),
// and with binary logging on, triggers and routines need SUPER unless the
// server sets log_bin_trust_function_creators: those are not checked
// beforehand, as only the dump knows which objects it holds.
var RestorePrivileges = []string{
	"SELECT", "INSERT", "CREATE", "DROP", "ALTER", "LOCK TABLES",
	"CREATE VIEW", "TRIGGER", "CREATE ROUTINE", "ALTER ROUTINE", "EVENT",
}

// PrivilegeError is credentials that lack privileges an operation needs,
// found before it started.
type PrivilegeError struct {
	Op      string              // "restore"
	Account string              // CURRENT_USER(), as the server names it
	Missing map[string][]string // object (`db`.* or *.*) -> missing privileges
}

// Is makes a privilege error match ErrMySQLPrivileges.
func (e *PrivilegeError) Is(target error) bool { return target == ErrMySQLPrivileges }

func (e *PrivilegeError) Error() string {
	objs := make([]string, 0, len(e.Missing))
	for o := range e.Missing {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	parts := make([]string, len(objs))
	for i, o := range objs {
		parts[i] = strings.Join(e.Missing[o], ", ") + " ON " + o
	}
	return fmt.Sprintf("%s: the MySQL account %s lacks %s; nothing was restored", e.Op, e.Account, strings.Join(parts, "; "))
}

// checkPrivileges asks the server, with cnf, for the account's grants
// (SHOW GRANTS, which includes the grants of its default role) and returns
// a *PrivilegeError naming every privilege in need that dbs lack. An
// empty dbs means every database (ON *.*).
func (s *Service) checkPrivileges(ctx context.Context, op string, cnf []byte, dbs []string, need []string) error {
	// SHOW GRANTS lines may carry the password hash: they are parsed here
	// and never logged or returned.
	rows, err := s.Tools.Query(ctx, cnf, "SELECT CURRENT_USER(); SHOW GRANTS;")
	if err != nil {
		var te *ToolError
		if errors.As(err, &te) && te.AccessDenied {
			return fmt.Errorf("the server refused the credentials: %w", err)
		}
		return fmt.Errorf("failed to read the credentials' grants: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) != 1 {
		return errors.New("failed to read the credentials' grants: unexpected answer from the server")
	}
	account := rows[0][0]
	var lines []string
	for _, r := range rows[1:] {
		lines = append(lines, strings.Join(r, "\t"))
	}
	g := parseGrants(lines)
	missing := map[string][]string{}
	if len(dbs) == 0 {
		if m := g.missing("", need); len(m) > 0 {
			missing["*.*"] = m
		}
	}
	for _, db := range dbs {
		if m := g.missing(db, need); len(m) > 0 {
			missing[quoteIdent(db)+".*"] = m
		}
	}
	if len(missing) > 0 {
		return &PrivilegeError{Op: op, Account: account, Missing: missing}
	}
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// grants is what SHOW GRANTS says about global and database privileges
// (table, column and routine grants never cover a whole database).
type grants struct {
	global map[string]bool
	dbs    []dbGrant
}

type dbGrant struct {
	pattern string // as in the grant: LIKE wildcards, backslash escapes
	privs   map[string]bool
}

// parseGrants reads the lines of SHOW GRANTS, such as
//
//	GRANT SELECT, INSERT ON *.* TO `u`@`localhost` IDENTIFIED BY PASSWORD '...'
//	GRANT ALL PRIVILEGES ON `shop\_copy`.* TO `u`@`localhost` WITH GRANT OPTION
//	GRANT `role` TO `u`@`localhost`
func parseGrants(lines []string) grants {
	g := grants{global: map[string]bool{}}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "GRANT ")
		if !ok {
			continue
		}
		privPart, obj, ok := cutOn(rest)
		if !ok {
			continue // a role grant
		}
		privs := splitPrivileges(privPart)
		switch {
		case strings.HasPrefix(obj, "*.* "):
			for p := range privs {
				g.global[p] = true
			}
		case strings.HasPrefix(obj, "`"):
			name, after, ok := unquoteIdent(obj)
			if ok && strings.HasPrefix(after, ".* ") {
				g.dbs = append(g.dbs, dbGrant{pattern: name, privs: privs})
			}
		}
	}
	return g
}

// cutOn splits "PRIVS ON OBJECT TO ..." at the " ON " outside of
// parentheses (column lists) and backquotes.
func cutOn(s string) (string, string, bool) {
	depth := 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '`':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], " ON "):
			return s[:i], s[i+4:], true
		}
	}
	return "", "", false
}

func splitPrivileges(s string) map[string]bool {
	out := map[string]bool{}
	depth := 0
	start := 0
	add := func(p string) {
		p = strings.TrimSpace(p)
		if i := strings.IndexByte(p, '('); i >= 0 {
			return // a column-level privilege covers no database
		}
		if p == "ALL" || p == "ALL PRIVILEGES" {
			p = "ALL"
		}
		if p != "" {
			out[p] = true
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				add(s[start:i])
				start = i + 1
			}
		}
	}
	add(s[start:])
	return out
}

// unquoteIdent reads a backquoted identifier at the start of s.
func unquoteIdent(s string) (string, string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '`' {
			if i+1 < len(s) && s[i+1] == '`' {
				b.WriteByte('`')
				i++
				continue
			}
			return b.String(), s[i+1:], true
		}
		b.WriteByte(s[i])
	}
	return "", "", false
}

// missing returns the privileges of need that db ("" for *.*) lacks.
func (g grants) missing(db string, need []string) []string {
	have := func(p string) bool {
		if g.global[p] || g.global["ALL"] {
			return true
		}
		if db == "" {
			return false
		}
		for _, d := range g.dbs {
			if (d.privs[p] || d.privs["ALL"]) && likeMatch(d.pattern, db) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, p := range need {
		if !have(p) {
			out = append(out, p)
		}
	}
	return out
}

// likeMatch matches name against a database grant pattern: '%' any
// run, '_' one character, a backslash escapes the next character.
func likeMatch(pattern, name string) bool {
	p, n := []rune(pattern), []rune(name)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '%':
				for k := j; k <= len(n); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '_':
				if j >= len(n) {
					return false
				}
			case '\\':
				if i+1 < len(p) {
					i++
				}
				if j >= len(n) || n[j] != p[i] {
					return false
				}
			default:
				if j >= len(n) || n[j] != p[i] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(n)
	}
	return match(0, 0)
}
