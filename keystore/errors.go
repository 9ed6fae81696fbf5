package keystore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Errors with a contract. Callers match them with errors.Is.
var (
	// ErrDenied: a key use was denied by policy or lifecycle; the error is
	// a *DeniedError carrying every reason code.
	ErrDenied = errors.New("keystore: key use denied")
	// ErrLocked: the operation needs the wrapping keys; unlock first.
	ErrLocked = errors.New("keystore: locked (unlock with the passphrase first)")
	// ErrBadPassphrase: the unlock secret is wrong.
	ErrBadPassphrase = errors.New("keystore: wrong passphrase")
	// ErrNotFound: no key with that id.
	ErrNotFound = errors.New("keystore: no such key")
	// ErrAmbiguous: a key id prefix matches more than one key.
	ErrAmbiguous = errors.New("keystore: key id prefix is ambiguous")
	// ErrCorrupt: a record, header or other stored item does not open or
	// parse; the error names the item. Nothing is changed.
	ErrCorrupt = errors.New("keystore: stored data does not open")
	// ErrInUse: another process has the keystore open.
	ErrInUse = errors.New("keystore: in use by another process")
	// ErrPermissions: the home directory or a store file is accessible by
	// other users, or owned by another user.
	ErrPermissions = errors.New("keystore: unsafe permissions")
	// ErrNotInitialized: there is no keystore in the home directory.
	ErrNotInitialized = errors.New("keystore: not initialized")
	// ErrExists: Init found an existing keystore.
	ErrExists = errors.New("keystore: already initialized")
	// ErrDeviceRevoked: the device is revoked; every key was destroyed.
	ErrDeviceRevoked = errors.New("keystore: device revoked")
	// ErrWrongClass: the key exists but belongs to another class.
	ErrWrongClass = errors.New("keystore: key is of another class")
	// ErrUnsupported: the backend or key cannot do this.
	ErrUnsupported = errors.New("keystore: not supported")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("keystore: closed")
)

// DeniedError is returned when policy or lifecycle denies a key use. It
// matches ErrDenied with errors.Is.
type DeniedError struct {
	Key     KeyID
	Op      lifecycle.Op
	Reasons policy.Reasons
}

// Codes returns the stable reason codes, e.g. ["locked", "auth_stale"].
func (e *DeniedError) Codes() []string { return e.Reasons.Codes() }

func (e *DeniedError) Error() string {
	return fmt.Sprintf("keystore: %s with key %s denied: %s", e.Op, e.Key.Short(), strings.Join(e.Codes(), ", "))
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// corrupt names the damaged item.
func corrupt(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
}
