package mobile

import (
	"errors"
	"strings"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform"
	"github.com/enigm/enigm/keystore"
)

// Error codes at the start of every error message: "enigm/<code>: …".
const (
	// CodeDenied: policy or lifecycle denied a key use; the reason codes
	// follow in brackets, e.g. "enigm/denied[locked,auth_stale]: …".
	CodeDenied = "denied"
	// CodeLocked: the keystore is locked; call Unlock.
	CodeLocked = "locked"
	// CodeBadSecret: the unlock secret is wrong.
	CodeBadSecret = "bad_secret"
	// CodeDeviceLocked: the hardware refuses while the device is locked.
	CodeDeviceLocked = "device_locked"
	// CodeAuthRequired: the hardware needs a (fresh) user authentication.
	CodeAuthRequired = "auth_required"
	// CodeKeyInvalidated: a hardware key was invalidated for good (the
	// biometric enrolment or passcode changed): the store needs recovery.
	CodeKeyInvalidated = "key_invalidated"
	// CodeDestroyed: the hardware protection is gone.
	CodeDestroyed = "destroyed"
	// CodeRevoked: the device is revoked.
	CodeRevoked = "revoked"
	// CodeNotFound: no such key or keystore.
	CodeNotFound = "not_found"
	// CodeCorrupt: stored data does not open.
	CodeCorrupt = "corrupt"
	// CodeUnsupported: the request, or the hardware, cannot do this.
	CodeUnsupported = "unsupported"
	// CodeUnavailable: the hardware is unavailable.
	CodeUnavailable = "unavailable"
	// CodeFailed: anything else.
	CodeFailed = "failed"
)

const errorPrefix = "enigm/"

// mobileError carries a code into the message, the only part of an error
// that survives the language boundary.
type mobileError struct {
	code string
	err  error
}

func (e *mobileError) Error() string {
	code := e.code
	var d *keystore.DeniedError
	if code == CodeDenied && errors.As(e.err, &d) {
		code += "[" + strings.Join(d.Codes(), ",") + "]"
	}
	return errorPrefix + code + ": " + e.err.Error()
}

func (e *mobileError) Unwrap() error { return e.err }

func fail(code string, err error) error {
	var m *mobileError
	if errors.As(err, &m) {
		return err
	}
	return &mobileError{code: code, err: err}
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fail(codeOf(err), err)
}

// codeOf classifies an error from the keystore or a backend.
func codeOf(err error) string {
	var g *backend.GateError
	switch {
	case errors.Is(err, keystore.ErrDenied):
		return CodeDenied
	case errors.Is(err, keystore.ErrDeviceRevoked):
		return CodeRevoked
	case errors.Is(err, keystore.ErrLocked):
		return CodeLocked
	case errors.Is(err, keystore.ErrBadPassphrase), errors.Is(err, backend.ErrBadSecret):
		return CodeBadSecret
	case errors.As(err, &g) && g.Gate == backend.GateDeviceUnlocked:
		return CodeDeviceLocked
	case errors.As(err, &g) && g.Gate == backend.GateUserPresence:
		return CodeAuthRequired
	case errors.Is(err, platform.ErrKeyInvalidated):
		return CodeKeyInvalidated
	case errors.Is(err, backend.ErrDestroyed):
		return CodeDestroyed
	case errors.Is(err, keystore.ErrNotFound), errors.Is(err, keystore.ErrNotInitialized):
		return CodeNotFound
	case errors.Is(err, keystore.ErrCorrupt), errors.Is(err, backend.ErrSealedData):
		return CodeCorrupt
	case errors.Is(err, keystore.ErrUnsupported), errors.Is(err, keystore.ErrWrongClass), errors.Is(err, platform.ErrUnsupported):
		return CodeUnsupported
	case errors.Is(err, backend.ErrUnavailable):
		return CodeUnavailable
	}
	return CodeFailed
}

// ErrorCode returns the code of an error returned by this package (see
// the Code constants), or "" for nil and for errors from elsewhere.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var m *mobileError
	if errors.As(err, &m) {
		return m.code
	}
	msg := err.Error()
	if i := strings.Index(msg, errorPrefix); i >= 0 {
		rest := msg[i+len(errorPrefix):]
		for _, c := range codes {
			if strings.HasPrefix(rest, c) && len(rest) > len(c) && (rest[len(c)] == ':' || rest[len(c)] == '[') {
				return c
			}
		}
	}
	return ""
}

var codes = []string{CodeDenied, CodeLocked, CodeBadSecret, CodeDeviceLocked, CodeAuthRequired, CodeKeyInvalidated,
	CodeDestroyed, CodeRevoked, CodeNotFound, CodeCorrupt, CodeUnsupported, CodeUnavailable, CodeFailed}
