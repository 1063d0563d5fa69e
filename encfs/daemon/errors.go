package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
)

// Errors cross the control socket as an APIError: a code, a message and
// an optional hint. The client turns the code back into the sentinel the
// daemon matched (APIError unwraps to it), so that errors.Is answers the
// same for an error that happened here and one the daemon reported, and
// one table of exit codes (cmd/mysecure) serves both paths.

// Error codes in API error responses.
const (
	CodeCredentials = "credentials"
	CodeDenied      = "denied"
	CodeUsage       = "usage"
	CodeInUse       = "in_use"
	CodeConflict    = "conflict"
	CodeInternal    = "internal"
	// CodeUnknownCategory: the request names a category the volume does
	// not have ('mysecure category add' makes one).
	CodeUnknownCategory = "unknown_category"
	// CodeCategoryInUse: a category that still holds data or that a
	// rule names cannot be removed.
	CodeCategoryInUse = "category_in_use"
	// CodeRollback: the config on disk is older than the last one this
	// host saw.
	CodeRollback = "rollback"
	// CodeCategoryExists, CodeBadCategoryName, CodeLastCategory: the
	// category errors of the volume.
	CodeCategoryExists  = "category_exists"
	CodeBadCategoryName = "bad_category_name"
	CodeLastCategory    = "last_category"
	// CodeNotExist: a file or directory the request names does not
	// exist.
	CodeNotExist = "not_exist"
	// CodeInterrupted: the request was cancelled (the caller went away,
	// or the daemon is stopping).
	CodeInterrupted = "interrupted"
	// CodeTampered, CodeCorruptConfig, CodeUnsupported: the volume's
	// config on disk was changed outside mysecure, cannot be read, or
	// needs a newer mysecure.
	CodeTampered      = "tampered"
	CodeCorruptConfig = "corrupt_config"
	CodeUnsupported   = "unsupported"
)

// Sentinels of the daemon's own codes: what an APIError with such a code
// unwraps to.
var (
	// ErrUsage: the request is malformed or names something that is not
	// there (a rule number, an op).
	ErrUsage = errors.New("bad request")
	// ErrDenied: the caller may not make this request (an
	// os.ErrPermission).
	ErrDenied = fmt.Errorf("not allowed (%w)", os.ErrPermission)
	// ErrInUse: the mount is busy (umount while files are open).
	ErrInUse = errors.New("in use")
	// ErrConflict: the request conflicts with the state (a rule that
	// exists already, rules not known; an os.ErrExist).
	ErrConflict = fmt.Errorf("conflict (%w)", os.ErrExist)
)

// APIError is an error response.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"error"`
	// Hint, when set, says what to do (the rule to add for a tool the
	// rules denied).
	Hint string `json:"hint,omitempty"`

	// err is the sentinel Code stands for, set by the client.
	err error
}

func (e *APIError) Error() string { return e.Message }

// Unwrap returns the sentinel the code stands for (nil for an internal
// error or a code this client does not know).
func (e *APIError) Unwrap() error { return e.err }

// wireError ties a code to the error it stands for.
type wireError struct {
	code   string
	err    error
	status int
}

// wireErrors is the daemon's table, tried in order when encoding (the
// first entry whose err matches gives the code) and when decoding (the
// first entry with the code gives the sentinel).
var wireErrors = []wireError{
	{CodeCredentials, volume.ErrIncorrectCredentials, http.StatusUnauthorized},
	{CodeDenied, ErrDenied, http.StatusForbidden},
	{CodeUsage, ErrUsage, http.StatusBadRequest},
	{CodeInUse, ErrInUse, http.StatusConflict},
	{CodeConflict, ErrConflict, http.StatusConflict},
	{CodeUnknownCategory, volume.ErrUnknownCategory, http.StatusBadRequest},
	{CodeCategoryInUse, volume.ErrCategoryInUse, http.StatusConflict},
	{CodeCategoryExists, volume.ErrCategoryExists, http.StatusConflict},
	{CodeBadCategoryName, volume.ErrBadCategoryName, http.StatusBadRequest},
	{CodeLastCategory, volume.ErrLastCategory, http.StatusBadRequest},
	{CodeRollback, rollback.ErrRollback, http.StatusConflict},
	{CodeTampered, volume.ErrTampered, http.StatusConflict},
	{CodeCorruptConfig, volume.ErrCorruptConfig, http.StatusConflict},
	{CodeUnsupported, volume.ErrUnsupported, http.StatusConflict},
	{CodeInterrupted, context.Canceled, http.StatusServiceUnavailable},
	{CodeConflict, os.ErrExist, http.StatusConflict},
	{CodeNotExist, os.ErrNotExist, http.StatusNotFound},
	{CodeDenied, os.ErrPermission, http.StatusForbidden},
}

// apiError classifies an error for the client. An *APIError made by a
// handler passes as it is.
func apiError(err error) (int, *APIError) {
	var ae *APIError
	if errors.As(err, &ae) {
		return http.StatusBadRequest, ae
	}
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			return w.status, &APIError{Code: w.code, Message: err.Error()}
		}
	}
	return http.StatusInternalServerError, &APIError{Code: CodeInternal, Message: err.Error()}
}

// codeError is the sentinel of one of the daemon's codes, or nil.
func codeError(code string) error {
	for _, w := range wireErrors {
		if w.code == code {
			return w.err
		}
	}
	return nil
}

// resolve sets what e unwraps to: jobErr's answer for a code of the
// module that ran a job (nil jobErr: none), else the daemon's.
func (e *APIError) resolve(jobErr func(code string) error) *APIError {
	if jobErr != nil {
		e.err = jobErr(e.Code)
	}
	if e.err == nil {
		e.err = codeError(e.Code)
	}
	return e
}
