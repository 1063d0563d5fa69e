package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

func checkLocalInfile(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "local_infile")
	if err != nil {
		return outcome{}, err
	}
	if on {
		return fail("local_infile = " + v), nil
	}
	return pass("local_infile = " + v), nil
}

func checkSecureFilePriv(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "secure_file_priv")
	if err != nil {
		return outcome{}, err
	}
	maria, err := a.isMariaDB(ctx)
	if err != nil {
		return outcome{}, err
	}
	switch {
	case v == "":
		return fail("secure_file_priv is empty: the server may read and write files anywhere its OS user can"), nil
	case v == Null && maria:
		// MariaDB: NULL (the default, and what --secure-file-priv= gives)
		// means no restriction at all.
		return fail("secure_file_priv is NULL, which in MariaDB means unrestricted: the server may read and write files anywhere its OS user can"), nil
	case v == Null:
		return pass("secure_file_priv is NULL: file import and export are disabled (MySQL)"), nil
	case !strings.HasPrefix(v, "/"):
		return outcome{}, fmt.Errorf("secure_file_priv: unexpected value %q (not an absolute path)", v)
	}
	return pass("secure_file_priv = " + v), nil
}

func checkSkipNameResolve(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "skip_name_resolve")
	if err != nil {
		return outcome{}, err
	}
	if on {
		return pass("skip_name_resolve = " + v), nil
	}
	warns := []string{"skip_name_resolve = " + v + ": client addresses are resolved with DNS"}
	accts, err := a.accounts(ctx)
	if err != nil {
		// A warning would understate it: an account matched by host
		// name makes this a failure.
		return outcome{}, fmt.Errorf("skip_name_resolve = %s, and the accounts could not be read to see whether any is matched by host name: %v", v, err)
	}
	var fails []string
	for _, acc := range logins(accts) {
		if !isLocalHost(acc.Host) && !isIPHost(acc.Host) {
			fails = append(fails, acc.name()+" is matched by host name, so whoever controls reverse DNS for a client address can claim it")
		}
	}
	sort.Strings(fails)
	return worst(fails, warns, nil), nil
}

func checkRequireSecureTransport(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "require_secure_transport")
	if err != nil {
		return outcome{}, err
	}
	if on {
		return pass("require_secure_transport = " + v), nil
	}
	noTCP, _, err := a.boolVar(ctx, "skip_networking")
	if err == nil && noTCP {
		return pass("require_secure_transport = "+v, "skip_networking = ON: no TCP connections are accepted"), nil
	}
	ev := []string{"require_secure_transport = " + v + ": clients may connect over TCP without TLS"}
	if bind, err := a.variable(ctx, "bind_address"); err == nil {
		ev = append(ev, "bind_address = "+bind)
	}
	if ssl, err := a.variable(ctx, "have_ssl"); err == nil {
		ev = append(ev, "have_ssl = "+ssl)
	}
	return fail(ev...), nil
}

func checkSymbolicLinks(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "have_symlink")
	if err != nil {
		return outcome{}, err
	}
	switch strings.ToUpper(v) {
	case "YES":
		return fail("have_symlink = YES: symbolic links are enabled"), nil
	case "DISABLED", "NO":
		return pass("have_symlink = " + v), nil
	}
	return outcome{}, fmt.Errorf("have_symlink: unexpected value %q", v)
}

func checkSkipGrantTablesLive(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "skip_grant_tables")
	if err == nil {
		if on {
			return fail("skip_grant_tables = " + v + ": the server is running without privilege checks"), nil
		}
		return pass("skip_grant_tables = " + v), nil
	}
	// Servers without the variable: with grant tables skipped,
	// CURRENT_USER() is "@" (MariaDB) or "skip-grants user@skip-grants
	// host" (MySQL).
	cu, err2 := a.value(ctx, "SELECT CURRENT_USER()")
	if err2 != nil {
		return outcome{}, fmt.Errorf("%v; %v", err, err2)
	}
	if !strings.Contains(cu, "@") {
		return outcome{}, fmt.Errorf("%v; CURRENT_USER(): unexpected value %q", err, cu)
	}
	if cu == "@" || strings.Contains(cu, "skip-grants") {
		return fail(fmt.Sprintf("CURRENT_USER() is %q: the server is running without privilege checks", cu)), nil
	}
	return pass(fmt.Sprintf("CURRENT_USER() is %q", cu)), nil
}
