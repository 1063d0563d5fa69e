package main

// Output rules (what every command prints):
//   - results go to stdout; errors, hints and progress to stderr;
//   - an error is one line "mysecure: error: ..." and, where the user can
//     do something about it, one line "mysecure: hint: ...";
//   - messages are lower case with no trailing period;
//   - full error chains and stack context only with --debug;
//   - listing commands take --json and then print exactly one JSON value;
//   - secrets (passphrases, salts, keys, decrypted data) are never printed,
//     and never logged: only stdout of `file decrypt -` carries plaintext.

import (
	"encoding/json"
	"fmt"
	"io"
)

type printer struct {
	out, err io.Writer
}

func (p *printer) errorf(format string, args ...any) {
	fmt.Fprintf(p.err, "mysecure: error: "+format+"\n", args...)
}

func (p *printer) hintf(format string, args ...any) {
	fmt.Fprintf(p.err, "mysecure: hint: "+format+"\n", args...)
}

func (p *printer) json(v any) error {
	enc := json.NewEncoder(p.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// noticef prints an informational line on stderr.
func (p *printer) noticef(format string, args ...any) {
	fmt.Fprintf(p.err, "mysecure: "+format+"\n", args...)
}
