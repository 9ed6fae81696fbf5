package bridge

import (
	"errors"
	"strings"
)

// Refusal codes. A bridge reports a refusal as an error whose message is
// RefusalPrefix + code, optionally followed by ": " and a detail.
const (
	// CodeDeviceLocked: the key is usable only while the device is
	// unlocked (or, for AfterFirstUnlock, after the first unlock since
	// boot), and it is not.
	CodeDeviceLocked = "device_locked"
	// CodeAuthRequired: the key needs a user authentication that has not
	// happened, has expired, or was cancelled.
	CodeAuthRequired = "auth_required"
	// CodeKeyInvalidated: the key is permanently unusable (the biometric
	// enrolment changed, the passcode was removed).
	CodeKeyInvalidated = "key_invalidated"
	// CodeKeyNotFound: no key with that alias.
	CodeKeyNotFound = "key_not_found"
	// CodeBadData: the input does not authenticate or parse (a GCM tag
	// that does not verify, a point not on the curve).
	CodeBadData = "bad_data"
	// CodeUnsupported: the hardware cannot do this (an algorithm, a
	// purpose, an access control it lacks).
	CodeUnsupported = "unsupported"
	// CodeUnavailable: the hardware is busy or unreachable.
	CodeUnavailable = "unavailable"
)

// RefusalPrefix starts the message of every refusal.
const RefusalPrefix = "enigm-bridge/"

var codes = []string{CodeDeviceLocked, CodeAuthRequired, CodeKeyInvalidated, CodeKeyNotFound,
	CodeBadData, CodeUnsupported, CodeUnavailable}

// refusal is the error Refuse returns.
type refusal struct{ code, detail string }

func (r *refusal) Error() string {
	if r.detail == "" {
		return RefusalPrefix + r.code
	}
	return RefusalPrefix + r.code + ": " + r.detail
}

// Refuse returns a refusal with code (a Code constant) and a human-readable
// detail. Swift and Kotlin implementations may call it, or throw any error
// whose message has the same form.
func Refuse(code, detail string) error { return &refusal{code: code, detail: detail} }

// RefusalCode returns the refusal code of err, or "" when err is not a
// refusal. It reads the message, because errors that cross the gomobile
// boundary keep nothing else; the code must be one of the Code constants,
// followed by the end of the message or ':'.
func RefusalCode(err error) string {
	if err == nil {
		return ""
	}
	var r *refusal
	if errors.As(err, &r) {
		return r.code
	}
	msg := err.Error()
	// Platform error wrappers may put a domain before the message; accept
	// the prefix anywhere, once, with a code of our own after it.
	i := strings.Index(msg, RefusalPrefix)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(RefusalPrefix):]
	for _, c := range codes {
		if strings.HasPrefix(rest, c) && (len(rest) == len(c) || rest[len(c)] == ':') {
			return c
		}
	}
	return ""
}
