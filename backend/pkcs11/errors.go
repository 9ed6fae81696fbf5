//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// tokenErr wraps an error from the token in the backend sentinel that
// describes it, keeping the CKR code in the message.
func tokenErr(op string, err error) error {
	if s := sentinel(err); s != nil {
		return fmt.Errorf("%w: %s: %w", s, op, err)
	}
	return fmt.Errorf("pkcs11: %s: %w", op, err)
}

// decryptErr is tokenErr for a decryption: a failure that is not about the
// session, the login or the device means the data does not open.
func decryptErr(op string, err error) error {
	if s := sentinel(err); s != nil {
		return fmt.Errorf("%w: %s: %w", s, op, err)
	}
	return fmt.Errorf("%w: %s: %w", backend.ErrSealedData, op, err)
}

func sentinel(err error) error {
	var e p11.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch uint(e) {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE:
		return backend.ErrBadSecret
	case p11.CKR_PIN_LOCKED:
		return backend.ErrLockedOut
	case p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_DEVICE_REMOVED,
		p11.CKR_DEVICE_ERROR, p11.CKR_DEVICE_MEMORY, p11.CKR_SLOT_ID_INVALID,
		p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_SESSION_COUNT,
		p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_USER_NOT_LOGGED_IN,
		p11.CKR_USER_PIN_NOT_INITIALIZED, p11.CKR_HOST_MEMORY:
		return backend.ErrUnavailable
	case p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID:
		return backend.ErrDestroyed
	}
	return nil
}
