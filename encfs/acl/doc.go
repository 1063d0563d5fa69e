// Package acl decides which processes may read plaintext through the
// encrypted mount. It holds the access rules (ALLOW/DENY a program, known by
// path and SHA-256 fingerprint, on files of a category), their
// authenticated on-disk storage, the identification of the calling process
// from /proc (with a fingerprint cache), and the decision engine the FUSE
// frontend asks in Open and Create.
//
// Rule syntax, one rule a line, as in the product mysecure replaces:
//
//	ALLOW @mysqlbackup * /usr/bin/mysqldump
//	DENY @* *.cnf /usr/bin/cat
//	ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/df,/bin/ls --user=mysql
//
// What it must not do: it never prints, never exits and never panics on bad
// input; it holds no encryption keys (the rule MAC key is handed in by the
// caller and not kept); it never opens files inside the encrypted mount
// through the kernel (the daemon serves that mount, so doing so could
// deadlock it): paths in the mount are hashed by the caller's
// IdentifierOptions.HashInMount. It imports no MySQL module and no CLI
// package.
package acl
