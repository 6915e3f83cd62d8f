package fsm

import (
	"errors"
	"fmt"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Error is a deterministic refusal to apply a command. The same log produces
// the same errors on every node.
type Error struct {
	Code fsmpb.ErrorCode
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrStaleFence) and friends match on the code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && t.Msg == ""
	}
	return false
}

// ErrVersionNotAgreed is returned by a leader asked to propose a command
// whose version (RequiredVersion) not every member applies yet: nothing
// was written.
var ErrVersionNotAgreed = errors.New("not every admin applies this command's version yet")

// Sentinels for errors.Is; they carry only a code.
var (
	ErrInvalid           = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_INVALID}
	ErrNotFound          = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND}
	ErrIllegalTransition = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION}
	ErrStaleFence        = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_STALE_FENCE}
	ErrVolumeBusy        = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_VOLUME_BUSY}
	ErrUnknownVersion    = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_UNKNOWN_VERSION}
	ErrNotOwner          = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_NOT_OWNER}
	ErrConflict          = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_CONFLICT}
)

func errorf(code fsmpb.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ResultError turns a refused ApplyResult back into an *Error (nil if it succeeded).
func ResultError(r *fsmpb.ApplyResult) error {
	if r == nil || r.ErrorCode == fsmpb.ErrorCode_ERROR_CODE_NONE {
		return nil
	}
	return &Error{Code: r.ErrorCode, Msg: r.Error}
}
