// Package mycnf reads and writes MySQL/MariaDB option files (my.cnf, .cnf).
//
// It exists for two jobs:
//
//   - Backups hand mariadb-dump and mariabackup a client option file
//     (--defaults-extra-file=/dev/fd/N). [Client.Render] writes one that the
//     real tools read back byte for byte, whatever the password holds, and
//     [ParseClient] reads the connection settings out of a user's file.
//   - A guard must see every option a server would read from its option
//     files. [Load] follows !include and !includedir and [Select] picks the
//     groups, both with the server's own rules (mysys/my_default.c of
//     MariaDB 10.11, checked against my_print_defaults by this package's
//     tests).
//
// The reading rules, as the server applies them:
//
//   - A file is read in pieces of at most 4094 bytes, each ending at a
//     newline or at that limit: a longer line is split and every further
//     piece is read as a line of its own. Bytes from a NUL to the end of
//     the piece are ignored. Line numbers count pieces.
//   - Whitespace is the C locale's (space, \t, \n, \v, \f, \r) plus byte
//     0xA0 (latin1 no-break space). That byte also ends UTF-8 characters
//     such as "à", so an unquoted value ending in one loses its last byte.
//   - A line whose first non-blank character is '#' or ';' is a comment. A
//     '#' later in a line starts a comment unless it is inside quotes; ';'
//     there is an ordinary character.
//   - "[name]" starts a group. Text after the first ']' is ignored, blanks
//     before ']' are removed and blanks after '[' are kept. A missing ']'
//     is an error. Group names compare case-insensitively.
//   - An option before any group is an error; a directive is not.
//   - "name = value": the name ends at the first '=', and blanks around name
//     and value are removed. If the value then starts and ends with the same
//     quote character (' or ") and is longer than one character, those two
//     characters are removed. Whether quoted or not, \n \t \r \b \s \" \'
//     and \\ are then replaced (\s by a space); any other backslash, and a
//     backslash that is the value's last character, is kept.
//   - "!include PATH" and "!includedir DIR" (blanks allowed after '!',
//     keywords case-sensitive, followed by a blank) take the rest of the
//     line, trailing blanks removed, comments not removed. The server drops
//     the last character of a directive on a final line without a newline.
//     Relative paths are relative to the working directory, not to the
//     including file. A leading ~ in an !include path is the home directory.
//     !includedir reads, in byte order of their names, the entries whose
//     names end in ".cnf" (hidden ones too). A missing !include file is
//     skipped; an unreadable !includedir directory is an error.
//   - Included files are read at a depth one more than the including file;
//     directives in files at depth 10 are skipped. An error in an included
//     file only ends that file: the server keeps what it read before it and
//     goes on. An error in the top file is fatal.
//   - World-writable regular files are ignored.
//
// This package never prints and never logs. Its errors name files, lines
// and what is wrong, and never contain an option's value, so they cannot
// carry a password.
package mycnf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxDepth is the include depth at which the server stops following
// directives: the top file is at depth 0.
const MaxDepth = 10

// MaxPiece is how many bytes of a line the server reads at once; a longer
// line is split into several lines.
const MaxPiece = 4094

// maxFileSize bounds how much of one file is read.
const maxFileSize = 16 << 20

// Option is one name[=value] line of an option file.
type Option struct {
	// Group is the group name as written, ASCII lower-cased (group names
	// are compared case-insensitively). Leading blanks inside the brackets
	// are part of the name, as for the server.
	Group string
	// Name is the option name as written; the tools see it as "--"+Name.
	Name string
	// Value is the value with quotes removed and escapes processed.
	Value string
	// HasValue tells "name=" (empty value) from a bare "name".
	HasValue bool
	// File is the file the option was read from.
	File string
	// Line is the line number, counted as the server counts (see the
	// package comment for long lines).
	Line int
}

// Canonical returns the name lower-cased with '_' replaced by '-', the
// form in which the server's option parser compares names.
func (o Option) Canonical() string { return Canonical(o.Name) }

// Canonical returns name lower-cased (ASCII) with '_' replaced by '-'.
func Canonical(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// Include is an !include or !includedir directive.
type Include struct {
	// Dir is true for !includedir.
	Dir bool
	// Path is the argument as written (no ~ expansion, not made absolute).
	Path string
	// Line is the directive's line.
	Line int
}

// File is the content of one option file, without its includes.
type File struct {
	// Name is the name given to Parse.
	Name string
	// Options are the file's options in order.
	Options []Option
	// Includes are the file's directives in order; Line places them among
	// Options.
	Includes []Include
}

// SyntaxError is a line the server rejects.
type SyntaxError struct {
	File string
	Line int
	// Msg says what is wrong; it never quotes the line.
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads one option file's text without following its includes,
// which it returns as directives. name is used in Option.File and errors.
// On a syntax error it returns what came before the error together with a
// *SyntaxError.
func Parse(r io.Reader, name string) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, maxFileSize)
	}
	f := &File{Name: name}
	for _, e := range parse(data, name, 0) {
		switch {
		case e.opt != nil:
			f.Options = append(f.Options, *e.opt)
		case e.inc != nil:
			f.Includes = append(f.Includes, *e.inc)
		case e.err != nil:
			return f, e.err
		}
	}
	return f, nil
}

// entry is one meaningful line: an option, a directive, a notice about a
// skipped directive (warn) or the error that ends the file (err).
type entry struct {
	opt  *Option
	inc  *Include
	warn error
	err  error
}

// isSpace is my_isspace(&my_charset_latin1, c).
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xA0:
		return true
	}
	return false
}

// asciiLower lower-cases ASCII letters only, leaving other bytes as they
// are.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// parse splits data into the pieces the server reads and interprets them
// at include depth depth. The result ends at the first error.
func parse(data []byte, name string, depth int) []entry {
	var (
		out      []entry
		group    string
		hasGroup bool
		line     int
	)
	for pos := 0; pos < len(data); {
		limit := min(pos+MaxPiece, len(data))
		end := limit
		if i := bytes.IndexByte(data[pos:limit], '\n'); i >= 0 {
			end = pos + i + 1
		}
		piece := data[pos:end]
		pos = end
		line++
		if i := bytes.IndexByte(piece, 0); i >= 0 {
			piece = piece[:i]
		}
		i := 0
		for i < len(piece) && isSpace(piece[i]) {
			i++
		}
		if i == len(piece) || piece[i] == '#' || piece[i] == ';' {
			continue
		}
		switch piece[i] {
		case '!':
			if e, ok := directive(piece, i, name, line, depth); ok {
				out = append(out, e)
				if e.err != nil {
					return out
				}
			}
			continue
		case '[':
			hasGroup = true
			j := bytes.IndexByte(piece[i+1:], ']')
			if j < 0 {
				return append(out, entry{err: &SyntaxError{File: name, Line: line, Msg: "wrong group definition (no closing ']')"}})
			}
			e := i + 1 + j
			for e > i+1 && isSpace(piece[e-1]) {
				e--
			}
			group = asciiLower(string(piece[i+1 : e]))
			continue
		}
		if !hasGroup {
			return append(out, entry{err: &SyntaxError{File: name, Line: line, Msg: "option without preceding group"}})
		}
		o := parseOption(piece[i:])
		o.Group, o.File, o.Line = group, name, line
		out = append(out, entry{opt: &o})
	}
	return out
}

// directive interprets a line starting with '!' at index i. ok is false
// for a line the server ignores without a word.
func directive(piece []byte, i int, name string, line, depth int) (entry, bool) {
	if depth >= MaxDepth {
		return entry{warn: fmt.Errorf("%s:%d: directive skipped: maximum include depth %d reached", name, line, MaxDepth)}, true
	}
	p := i + 1
	for p < len(piece) && isSpace(piece[p]) {
		p++
	}
	rest := piece[p:]
	var kw string
	switch {
	case bytes.HasPrefix(rest, []byte("includedir")) && len(rest) > 10 && isSpace(rest[10]):
		kw = "includedir"
	case bytes.HasPrefix(rest, []byte("include")) && len(rest) > 7 && isSpace(rest[7]):
		kw = "include"
	default:
		return entry{}, false
	}
	// get_argument(): skip blanks after the keyword, then cut the line
	// before its last character and any blanks before that one. The last
	// character is taken to be the newline, which it is not on a final
	// line without one: the server then drops a real character too.
	start := p + len(kw)
	for start < len(piece) && isSpace(piece[start]) {
		start++
	}
	end := len(piece) - 1
	for end > 0 && isSpace(piece[end-1]) {
		end--
	}
	if end <= start {
		return entry{err: &SyntaxError{File: name, Line: line, Msg: fmt.Sprintf("wrong '!%s' directive (no argument)", kw)}}, true
	}
	return entry{inc: &Include{Dir: kw == "includedir", Path: string(piece[start:end]), Line: line}}, true
}

// commentStart is remove_end_comment(): the index of the first '#' outside
// quotes, or len(s). A backslash escapes a quote only inside quotes.
func commentStart(s []byte) int {
	var quote byte
	escape := false
	for i, c := range s {
		if (c == '\'' || c == '"') && !escape {
			if quote == 0 {
				quote = c
			} else if quote == c {
				quote = 0
			}
		}
		if quote == 0 && c == '#' {
			return i
		}
		escape = quote != 0 && c == '\\' && !escape
	}
	return len(s)
}

// parseOption interprets s, an option line from its first non-blank
// character.
func parseOption(s []byte) Option {
	s = s[:commentStart(s)]
	eq := bytes.IndexByte(s, '=')
	nameEnd := len(s)
	if eq >= 0 {
		nameEnd = eq
	}
	for nameEnd > 0 && isSpace(s[nameEnd-1]) {
		nameEnd--
	}
	o := Option{Name: string(s[:nameEnd])}
	if eq < 0 {
		return o
	}
	o.HasValue = true
	v := eq + 1
	for v < len(s) && isSpace(s[v]) {
		v++
	}
	ve := len(s)
	for ve > v && isSpace(s[ve-1]) {
		ve--
	}
	if ve-v > 1 && (s[v] == '"' || s[v] == '\'') && s[ve-1] == s[v] {
		v++
		ve--
	}
	o.Value = unescape(s[v:ve])
	return o
}

// unescape replaces the escape sequences the server knows; a backslash
// before any other byte, or at the end, stays.
func unescape(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i == len(s)-1 {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'b':
			out = append(out, '\b')
		case 's':
			out = append(out, ' ')
		case '"', '\'', '\\':
			out = append(out, s[i])
		default:
			out = append(out, '\\', s[i])
		}
	}
	return string(out)
}

// Select returns the options whose group is one of groups (compared
// case-insensitively), in file order. When a caller folds them into
// settings, the last occurrence wins, as for the tools.
func Select(opts []Option, groups ...string) []Option {
	want := make(map[string]bool, len(groups))
	for _, g := range groups {
		want[asciiLower(g)] = true
	}
	var out []Option
	for _, o := range opts {
		if want[o.Group] {
			out = append(out, o)
		}
	}
	return out
}

// ServerGroups returns the groups mariadbd of the given base version (such
// as "10.11") reads, in the order `mariadbd --help` lists them.
func ServerGroups(version string) []string {
	return []string{
		"mysqld", "server", "mysqld-" + version,
		"mariadb", "mariadb-" + version,
		"mariadbd", "mariadbd-" + version,
		"client-server", "galera",
	}
}

// WithSuffix returns groups followed by each group with suffix appended,
// as --defaults-group-suffix (or MYSQL_GROUP_SUFFIX) makes the tools read
// them. An empty suffix returns groups unchanged.
func WithSuffix(suffix string, groups ...string) []string {
	out := append([]string(nil), groups...)
	if suffix == "" {
		return out
	}
	for _, g := range groups {
		out = append(out, g+suffix)
	}
	return out
}

// errTooMany is returned when a load reads more files than maxFiles.
var errTooMany = errors.New("too many option files (include loop?)")
