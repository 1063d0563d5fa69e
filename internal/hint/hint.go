// Package hint attaches to an error what the user can do about it.
//
// A library package that knows the remedy for a failure returns
// hint.Wrap(err, "what to do"); the CLI prints the error on one line and
// the hint on the next, and decides the exit code from the wrapped error
// (errors.Is and errors.As see through an *Error). The hint is never part
// of Error(): logs and JSON carry the error alone.
package hint

import "errors"

// Error is an error with a hint.
type Error struct {
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err with hint attached; nil stays nil, and an empty hint
// adds nothing.
func Wrap(err error, hint string) error {
	if err == nil || hint == "" {
		return err
	}
	return &Error{Err: err, Hint: hint}
}

// Of returns the outermost hint in err's chain.
func Of(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint, true
	}
	return "", false
}
