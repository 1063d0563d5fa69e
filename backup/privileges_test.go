package backup

import (
	"reflect"
	"testing"
)

func TestGrantsMissing(t *testing.T) {
	lines := []string{
		"GRANT RELOAD, LOCK TABLES, BINLOG MONITOR ON *.* TO `u`@`localhost` IDENTIFIED BY PASSWORD '*AB'",
		"GRANT SELECT (`a`, `b`), INSERT ON `shop`.`t` TO `u`@`localhost`",
		"GRANT SELECT, INSERT, CREATE, DROP ON `shop\\_copy`.* TO `u`@`localhost`",
		"GRANT ALL PRIVILEGES ON `crm%`.* TO `u`@`localhost` WITH GRANT OPTION",
		"GRANT ALTER ON `we``ird`.* TO `u`@`localhost`",
		"GRANT `dba_role` TO `u`@`localhost`",
	}
	g := parseGrants(lines)
	need := []string{"SELECT", "INSERT", "CREATE", "DROP", "ALTER", "LOCK TABLES"}
	for _, tc := range []struct {
		db   string
		want []string
	}{
		{"shop_copy", []string{"ALTER"}},
		{"shopXcopy", []string{"SELECT", "INSERT", "CREATE", "DROP", "ALTER"}}, // \_ is a literal _
		{"crm-2", nil},
		{"shop", []string{"SELECT", "INSERT", "CREATE", "DROP", "ALTER"}}, // a table grant covers no database
		{"we`ird", []string{"SELECT", "INSERT", "CREATE", "DROP"}},
		{"", []string{"SELECT", "INSERT", "CREATE", "DROP", "ALTER"}},
	} {
		t.Run(tc.db, func(t *testing.T) {
			if got := g.missing(tc.db, need); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("missing(%q) = %v, want %v", tc.db, got, tc.want)
			}
		})
	}
	if all := parseGrants([]string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"}); len(all.missing("x", RestorePrivileges)) != 0 {
		t.Fatal("ALL PRIVILEGES ON *.* should cover everything")
	}
}

func TestMissingPrivilegeMessages(t *testing.T) {
	for line, want := range map[string]bool{
		"ERROR 1044 (42000) at line 22: Access denied for user 'b'@'localhost' to database 'shop_copy'":                                true,
		"ERROR 1227 (42000) at line 90: Access denied; you need (at least one of) the SUPER, SET USER privilege(s) for this operation": true,
		"ERROR 1142 (42000) at line 3: CREATE command denied to user 'b'@'localhost' for table `x`.`t`":                                true,
		"ERROR 1419 (HY000) at line 2: You do not have the SUPER privilege and binary logging is enabled":                              true,
		"ERROR 1045 (28000): Access denied for user 'b'@'localhost' (using password: YES)":                                             false,
	} {
		if got := missingPrivilege(line); got != want {
			t.Errorf("missingPrivilege(%q) = %v, want %v", line, got, want)
		}
	}
}
