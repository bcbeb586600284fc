package config

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of configuration error. Every *Error matches exactly one of them
// under errors.Is.
var (
	// ErrSyntax: the file is not valid YAML or JSON.
	ErrSyntax = errors.New("config: syntax error")
	// ErrUnknownKey: a key that gw does not know.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrWrongType: a value of the wrong type for its key.
	ErrWrongType = errors.New("config: wrong type")
	// ErrInvalid: a value of the right type that is not allowed, or a
	// problem with the configuration as a whole.
	ErrInvalid = errors.New("config: invalid value")
)

// Error is one configuration problem, reported on one line.
type Error struct {
	// Kind is ErrSyntax, ErrUnknownKey, ErrWrongType or ErrInvalid.
	Kind error
	// Key is the full path of the key concerned, such as
	// "servers.notes.restart", or "" when the problem is not about one key.
	Key string

	msg string // message without the "config: " prefix
	err error  // underlying cause, if any
}

// Error returns the message, starting with "config: ".
func (e *Error) Error() string { return "config: " + e.msg }

// Unwrap returns the kind and, if there is one, the underlying cause, such
// as an *fs.PathError for a missing envFile.
func (e *Error) Unwrap() []error {
	if e.err != nil {
		return []error{e.Kind, e.err}
	}
	return []error{e.Kind}
}

func newError(kind error, key, format string, args ...any) *Error {
	return &Error{Kind: kind, Key: key, msg: oneLine(fmt.Sprintf(format, args...))}
}

// oneLine folds a possibly multi-line message, such as yaml.v3's list of
// unmarshal errors, into one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	for i, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if i > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
