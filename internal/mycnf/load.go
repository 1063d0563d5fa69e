package mycnf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
)

// maxFiles bounds how many files one Load reads. The server only bounds
// the depth, so includes that fan out could make it read billions of
// files; no real configuration comes near this.
const maxFiles = 1000

// maxPath is the server's limit (FN_REFLEN-3): longer paths are ignored.
const maxPath = 509

// Loaded is the result of LoadAll.
type Loaded struct {
	// Options are all options read, in the order the server reads them.
	Options []Option
	// Files are the files read, in order (a file included twice is listed
	// twice).
	Files []string
	// Warnings are problems the server only warns about or passes over in
	// silence: an error in an included file (which ends that file only), a
	// missing !include file, a world-writable file, a directive skipped at
	// the depth limit. Among them, errors of syntax are *SyntaxError.
	Warnings []error
}

// Load reads the option file at path and the files it includes, as the
// server reads a --defaults-file (a leading ~ in path is expanded, as
// there), and returns all options in order. Only what the server treats
// as fatal is an error: path missing or unreadable, a syntax error in path
// itself, an !includedir in path that cannot be read. One more error
// protects against include loops that fan out: reading more than 1000
// files. Errors name the file and, for its content, the line. Problems the
// server passes over are dropped; LoadAll returns them.
func Load(path string) ([]Option, error) {
	l, err := LoadAll(path)
	if err != nil {
		return nil, err
	}
	return l.Options, nil
}

// LoadAll is Load that also returns the files read and the warnings. On a
// fatal error it returns nil and the error, as the server then uses no
// option at all.
func LoadAll(path string) (*Loaded, error) {
	l := &loader{res: &Loaded{}}
	if err := l.file(path, 0); err != nil {
		return nil, err
	}
	return l.res, nil
}

type loader struct {
	res   *Loaded
	files int
}

func (l *loader) warn(err error) { l.res.Warnings = append(l.res.Warnings, err) }

// file reads one file at depth, as search_default_file_with_ext() does.
// The error is what ends this file (and the whole load at depth 0); a file
// that cannot be opened is an error at depth 0 only.
func (l *loader) file(path string, depth int) error {
	if len(path) >= maxPath {
		l.warn(fmt.Errorf("%.40s...: path longer than %d bytes ignored", path, maxPath-1))
		return nil
	}
	path = expandHome(path)
	st, err := os.Stat(path)
	if err != nil {
		return l.notOpened(err, depth)
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0o002 != 0 {
		l.warn(fmt.Errorf("world-writable config file %s is ignored", path))
		return nil
	}
	if st.IsDir() {
		// fopen() of a directory works and the first read fails: nothing.
		l.warn(fmt.Errorf("%s is a directory: nothing read", path))
		return nil
	}
	l.files++
	if l.files > maxFiles {
		return fmt.Errorf("%s: %w", path, errTooMany)
	}
	fh, err := os.Open(path)
	if err != nil {
		return l.notOpened(err, depth)
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	fh.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return fmt.Errorf("read %s: larger than %d bytes", path, maxFileSize)
	}
	l.res.Files = append(l.res.Files, path)
	for _, e := range parse(data, path, depth) {
		switch {
		case e.opt != nil:
			l.res.Options = append(l.res.Options, *e.opt)
		case e.warn != nil:
			l.warn(e.warn)
		case e.err != nil:
			return e.err
		case e.inc.Dir:
			if err := l.dir(e.inc.Path, depth); err != nil {
				if errors.Is(err, errTooMany) {
					return err
				}
				return fmt.Errorf("%s:%d: %w", path, e.inc.Line, err)
			}
		default:
			if err := l.file(e.inc.Path, depth+1); err != nil {
				if errors.Is(err, errTooMany) {
					return err
				}
				l.warn(err)
			}
		}
	}
	return nil
}

// notOpened handles a file that cannot be opened: fatal for the top file
// (the server's "could not open required defaults file"), skipped with a
// warning for an included one.
func (l *loader) notOpened(err error, depth int) error {
	if depth == 0 {
		return fmt.Errorf("could not open required defaults file: %w", err)
	}
	l.warn(fmt.Errorf("include skipped: %w", err))
	return nil
}

// dir reads the *.cnf entries of an !includedir directory in byte order of
// their names, each at depth+1. Failing to list it is an error.
func (l *loader) dir(dir string, depth int) error {
	ents, err := os.ReadDir(dir) // sorted by name, as my_dir(MY_WANT_SORT)
	if err != nil {
		return fmt.Errorf("!includedir: %w", err)
	}
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".cnf") {
			continue
		}
		// fn_format(): DIR + "/" + NAME, without cleaning the path.
		if err := l.file(strings.TrimSuffix(dir, "/")+"/"+ent.Name(), depth+1); err != nil {
			if errors.Is(err, errTooMany) {
				return err
			}
			l.warn(err)
		}
	}
	return nil
}

// expandHome replaces a leading "~" or "~/" by $HOME and "~user/" by that
// user's home directory, as the server's unpack_dirname() does. A path it
// cannot expand is returned unchanged.
func expandHome(path string) string {
	if !strings.HasPrefix(path, "~") {
		return path
	}
	name, rest, _ := strings.Cut(path[1:], "/")
	var home string
	if name == "" {
		home = os.Getenv("HOME")
	} else if u, err := user.Lookup(name); err == nil {
		home = u.HomeDir
	}
	if home == "" {
		return path
	}
	if rest == "" && !strings.Contains(path, "/") {
		return home
	}
	return strings.TrimSuffix(home, "/") + "/" + rest
}
