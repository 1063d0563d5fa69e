package sshclient

import "errors"

// An API that carries codes instead of Go errors (the daemon's answer to
// a backup job over SSH) names SSH failures with these codes. WireCode
// and WireError are the two directions of one table, so that the
// client's error matches the same sentinels (errors.Is) as the error of
// a run in its own process.
const (
	CodeHostKey = "ssh_host_key" // ErrHostKey
	CodeFailed  = "ssh_failed"   // ErrAuth, ErrConnect, a *ForwardError
	CodeConfig  = "ssh_config"   // ErrConfig
)

// WireCode is the code of err, or "" when it is not an SSH failure.
func WireCode(err error) string {
	var fe *ForwardError
	switch {
	case errors.Is(err, ErrHostKey):
		return CodeHostKey
	case errors.Is(err, ErrConfig):
		return CodeConfig
	case errors.Is(err, ErrAuth), errors.Is(err, ErrConnect), errors.As(err, &fe):
		return CodeFailed
	}
	return ""
}

// WireError is the sentinel a code stands for (ErrConnect for every
// failure to reach or use a host), or nil for a code that is not one of
// this package's.
func WireError(code string) error {
	switch code {
	case CodeHostKey:
		return ErrHostKey
	case CodeConfig:
		return ErrConfig
	case CodeFailed:
		return ErrConnect
	}
	return nil
}
