package certs

import "errors"

// ErrInvalid is matched (errors.Is) by every error this package returns
// about its input rather than the files or the system: a half-given
// configuration, an unknown role, a bad name, host or validity. A command
// line reports those as usage mistakes.
var ErrInvalid = errors.New("certs: invalid input")

// invalidError is a one-sentence input error that matches ErrInvalid.
type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }
