package audit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

//go:generate go test -run TestDocsUpToDate -update .

// Markdown renders docs/audit.md from the catalog, so that the
// documentation cannot drift from the code (TestDocsUpToDate compares
// them).
func Markdown() string {
	var b strings.Builder
	b.WriteString(docIntro)
	b.WriteString("\n## Coverage\n\n")
	b.WriteString("CIS items with a check, per section (an item counts once even when two checks cover it):\n\n")
	b.WriteString("| section | MariaDB 10.11 | MySQL 8.4 |\n|---|---:|---:|\n")
	names := []string{"", "1 operating system", "2 installation and planning", "3 file permissions", "4 general", "5 permissions", "6 auditing and logging", "7 authentication", "8 network", "9 replication"}
	mdb, my := coverage(MariaDB), coverage(MySQL)
	tm, ty := 0, 0
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", names[i], mdb[i], my[i])
		tm += mdb[i]
		ty += my[i]
	}
	fmt.Fprintf(&b, "| **total** | **%d** | **%d** |\n\n", tm, ty)
	beyond := 0
	for _, c := range checks {
		if c.MariaDB == nil && c.MySQL == nil {
			beyond++
		}
	}
	fmt.Fprintf(&b, "%d checks in all, %d of them beyond CIS. For comparison: MITRE's InSpec profile for the CIS MySQL Enterprise Edition 5.7 benchmark has 63 controls; dev-sec's mysql-baseline has 17.\n\n", len(checks), beyond)
	b.WriteString("## Checks\n\n")
	b.WriteString("| ID | CIS MariaDB | CIS MySQL | severity | title |\n|---|---|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", c.ID, refText(c.MariaDB, c.Only == MySQL), refText(c.MySQL, c.Only == MariaDB), c.Severity, c.Title)
	}
	for _, c := range checks {
		fmt.Fprintf(&b, "\n### `%s`: %s\n\n", c.ID, c.Title)
		if c.Only != "" {
			fmt.Fprintf(&b, "- applies to: %s only (not applicable elsewhere)\n", c.Only)
		}
		fmt.Fprintf(&b, "- CIS MariaDB 10.11: %s; CIS MySQL 8.4: %s\n", refText(c.MariaDB, false), refText(c.MySQL, false))
		fmt.Fprintf(&b, "- severity: %s\n- criteria: %s\n- why: %s\n- fix: %s\n", c.Severity, c.Criteria, c.Why, c.Fix)
		if c.FixMySQL != "" {
			fmt.Fprintf(&b, "- fix on MySQL: %s\n", c.FixMySQL)
		}
	}
	return b.String()
}

func refText(r *CISRef, na bool) string {
	if r == nil || na {
		return "-"
	}
	s := r.ID + " (L" + strconv.Itoa(r.Level)
	if r.Manual {
		s += ", Manual in CIS"
	}
	return s + ")"
}

// coverage counts distinct CIS items per section for a flavor.
func coverage(f Flavor) map[int]int {
	seen := map[string]bool{}
	out := map[int]int{}
	for _, c := range checks {
		if c.Only != "" && c.Only != f {
			continue
		}
		r := c.cis(f)
		if r == nil || seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		sec, _ := strconv.Atoi(strings.SplitN(r.ID, ".", 2)[0])
		out[sec]++
	}
	return out
}

// cisIDs lists the CIS ids covered for a flavor, sorted (for tests).
func cisIDs(f Flavor) []string {
	var out []string
	for _, c := range checks {
		if r := c.cis(f); r != nil {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return out
}

const docIntro = `# harden audit: the checks

<!-- Generated from hardening/audit by 'go generate ./hardening/audit'; TestDocsUpToDate fails when this file differs. Do not edit by hand. -->

` + "`mysecure harden audit`" + ` checks a live server and its host against the CIS
MariaDB 10.11 and MySQL 8.4 benchmarks, and against the ways around privilege
checks that mysecure's guard exists for. It detects the flavor from
` + "`VERSION()`" + ` and runs the matching set: a check that does not apply to the
flavor reports ` + "`not-applicable`" + `.

**About the CIS ids.** The CIS documents could not be consulted while this
was written: the recommendation numbers, titles and levels are from memory
of the CIS MariaDB 10.6/10.11 and MySQL 8.0/8.4 benchmarks (sections 1 OS
level, 2 installation and planning, 3 file permissions, 4 general, 5
permissions, 6 auditing and logging, 7 authentication, 8 network, 9
replication) and may be off by a number within a section. The MariaDB ids
were then compared with a public list of CIS MariaDB 10.6 recommendation
titles (the README of github.com/MikeHorn-git/mariadb-cis-benchmark, 34
items): the ids of sections 1 to 6 and 8 agree; section 7 was renumbered to
it (7.1 old passwords, 7.2 passwords in option files, 7.3 strong
authentication, 7.4 password complexity, 7.5 wildcard hosts, 7.6 anonymous
accounts: 7.3 and 7.4 are in that list, the others follow from it). That
list has one item no check covers: 2.3 "Do not specify passwords in the
command line" (the client tools overwrite a password given in argv once
they start, so a running process shows none). Check the ids against your
copy of the benchmark before quoting them in an audit report. Where
mysecure's criterion is stricter than CIS (the plugin directory), the
criteria say so.

**MySQL.** MySQL is not packaged on the test machine: the MySQL-only paths
(flavor detection, variable names, flavor-specific fixes, stderr as a
warning, the option groups mysqld reads and its full-name option matching,
persisted variables in ` + "`mysqld-auto.cnf`" + `) are unit-tested over a recorded
MySQL 8.4.3 server (` + "`hardening/audit/testdata/mysql-8.4.3.txt`" + `), not
against a live one. That recording was written from knowledge of MySQL 8.4's
variables, tables and errors, not captured from a running server; so are
MySQL's roles (mysql.role_edges, mandatory_roles), which the privs.* checks
follow as they follow MariaDB's (tested live). component_keyring_file
(MySQL 8.4's replacement for the keyring_file plugin) is not checked by
files.key-file. The CIS MySQL 8.4 ids of the MySQL-only checks
(config.memcached, auth.password-reuse, logging.log-raw) are the least
certain ones.

**Tests.** Every check is shown failing (or warning) and passing against a
real MariaDB 10.11 server that the tests misconfigure and then fix
(` + "`hardening/audit/live_*_test.go`" + `; replication with a real primary and
replica, partitions with a tmpfs, roles, a server run as root). When the
whole package runs, its TestMain fails if a check lacks either verdict,
except the MySQL-only checks (recorded MySQL 8.4 set) and the pass of
` + "`harden.guard`" + `, which needs a mysecure mount and is shown in
` + "`integration/audit_live2_test.go`" + `.

## Use

` + "```" + `sh
mysecure harden audit                       # every check (profile mysecure)
mysecure harden audit --profile cis-level1  # CIS level 1 items only
mysecure harden audit --only 7.7,files.datadir --skip privs.process
mysecure harden audit --json                # a report for scanners
` + "```" + `

Exit status: 0 when nothing failed and every check could run; 14 when a check
failed or could not run (warnings and not-applicable checks do not count).

**Privileges.** Run it as root on the server's host (file and process checks
stat and read files there), connected as root or as an account with SELECT on
the ` + "`mysql`" + ` database and SHOW DATABASES (plus SELECT, SHOW VIEW, TRIGGER and
EVENT on ` + "`*.*`" + ` for ` + "`privs.definer`" + `). information_schema shows a
less privileged account only its own grants, databases and objects: the checks
that need more report ` + "`error`" + ` (exit 14), never a pass they cannot vouch for.

Configuration (` + "`/etc/mysecure/mysecure.yaml`" + `):

` + "```" + `yaml
audit:
  admins: ["'root'@'localhost'", "'repl'@'10.0.0.%'"]  # may hold admin privileges
  accounts: ["'app'@'10.0.0.5'"]                      # other accounts in use
  plugins: [server_audit, simple_password_check]      # may be loaded
  udfs: []                                            # may be in mysql.func
` + "```" + `

Without ` + "`admins`" + `, the administrators are the accounts a MariaDB or MySQL
install makes: root, mysql, mariadb.sys and MySQL's mysql.sys, mysql.session,
mysql.infoschema, all @localhost. Without ` + "`accounts`" + `, accounts.unused
warns about every unlocked account that is not an administrator instead of
failing: list the accounts in use to make it a pass/fail check.

## JSON report

` + "`--json`" + ` prints one object: ` + "`schema_version`" + ` (1), ` + "`tool`" + `, ` + "`tool_version`" + `,
` + "`host`" + `, ` + "`time`" + ` (RFC 3339, UTC), ` + "`profile`" + `, ` + "`server`" + ` (` + "`flavor`" + `,
` + "`version`" + `), ` + "`summary`" + ` (` + "`total`" + `, ` + "`pass`" + `, ` + "`warn`" + `, ` + "`fail`" + `, ` + "`error`" + `,
` + "`not_applicable`" + `) and ` + "`findings`" + `: each with ` + "`id`" + `, ` + "`cis_id`" + `, ` + "`level`" + `,
` + "`severity`" + `, ` + "`title`" + `, ` + "`status`" + ` (pass, warn, fail, error, not-applicable),
` + "`rationale`" + `, ` + "`fix`" + ` and ` + "`evidence`" + `, a list of objects with ` + "`text`" + ` and, where
they apply, ` + "`file`" + `, ` + "`line`" + `, ` + "`variable`" + `, ` + "`value`" + `, ` + "`account`" + `, ` + "`mode`" + `,
` + "`owner`" + `, ` + "`pid`" + `, ` + "`role`" + ` (the role, or chain of roles "outer > inner",
through which an account holds a privilege). Evidence never carries a
password.

## Not covered

- CIS items that need a human: backup policy, tested restores, backup
  credentials and copies (2.1.1-2.1.4, 2.1.6, 2.1.7; mysecure's own backups
  cover several), a dedicated machine (2.2), passwords on command lines (2.3),
  reused user names (2.4), unique cryptographic material (2.5), security
  patches (4.1), sandboxing (1.7), "replication traffic is secured" as a
  network design (9.1).
- Unused accounts (CIS 2.7) by last login: MariaDB keeps no last-login time
  unless the audit plugin logs connections; accounts.unused uses the
  criterion its text gives instead (expired passwords, and the accounts in
  use listed in audit.accounts).
- MySQL-only items: master_info_repository (gone in MySQL 8.4, which keeps
  the replication metadata in tables).
`
