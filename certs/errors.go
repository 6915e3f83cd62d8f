package certs

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error this package returns
// about its input rather than the files or the system: a half-given
// configuration, an unknown role, a bad name, host or validity. A command
// line reports those as usage mistakes.
var ErrInvalid = errors.New("certs: invalid input")

// invalidError is a one-sentence input error that matches ErrInvalid.
type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// ErrWarning is matched (errors.Is) by what a Source reports about
// material it loaded anyway: a key file others may read, our certificate
// not verified by a CA file that was applied. Log it; nothing is refused.
var ErrWarning = errors.New("certs: warning")

// warningError is an error that matches ErrWarning.
type warningError struct{ error }

func (e warningError) Unwrap() error        { return e.error }
func (e warningError) Is(target error) bool { return target == ErrWarning }

// joinedErrors is several errors as one line ("; " between them), each
// still matched by errors.Is and errors.As.
type joinedErrors []error

func (e joinedErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedErrors) Unwrap() []error { return e }

// joinErrors is nil for none, the error for one, joinedErrors for more.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joinedErrors(errs)
}
