// Package backend is the hardware boundary of the keystore.
//
// A [Backend] protects the keystore's wrapping keys (one per key class): it
// seals a small secret so that only a later session opened with the unlock
// secret, on the same hardware, can unseal it. Where the hardware can hold
// keys itself, a session also offers a hardware-resident, non-exportable
// ECDSA P-256 binding key ([BindingKeys]) and, optionally, attestation
// evidence about it ([Attester]).
//
// Larger material (Ed25519, ML-DSA-65, ML-KEM-768/X25519 keys) never goes
// into the hardware: the keystore wraps it in software under the class
// wrapping keys, and the backend protects those. Which keys can live in the
// hardware is read from [Capabilities], never from a backend's name.
//
// # Contract
//
//   - Provision and Open never store secrets in the returned state; the
//     state may be kept on disk in the clear.
//   - Seal output binds its label: unsealing with another label fails.
//   - Unseal fails closed: tampered, truncated or foreign sealed data returns
//     an error wrapping [ErrSealedData], never other plaintext.
//   - A wrong unlock secret returns an error wrapping [ErrBadSecret].
//   - After Destroy, no session opens the state and nothing it sealed
//     unseals again, even from copies of the state and sealed blobs made
//     earlier, where the hardware makes that possible (reported by
//     [GateDestroy] among the hardware gates). Destroy needs no unlock
//     secret, but may need backend configuration (TPM owner authorization)
//     and fails with ErrUnavailable without it. A caller that will not keep
//     a provisioned state must Destroy it: hardware resources are scarce.
//   - A secret passed to Seal is 1 to MaxSealSize bytes.
//   - A hardware gate that is not satisfied (boot state changed, device
//     locked, user presence missing) is reported as a [*GateError], not as
//     corrupt data or a wrong secret.
//   - Results the hardware returns are checked (verify after sign,
//     authenticated unseal); a wrong result is [ErrHardwareFault].
//   - Wrong secrets may be counted by the hardware (dictionary-attack
//     protection): callers must not retry Open automatically.
//
// The conformance suite in backend/backendtest checks this contract for
// every implementation.
package backend

import (
	"context"
	"crypto"
	"errors"
)

// Level is the protection level a device reports in its public record.
type Level string

// Protection levels.
const (
	LevelSoftware         Level = "software"
	LevelHardwareTPM      Level = "hardware-tpm"
	LevelHardwarePKCS11   Level = "hardware-pkcs11"
	LevelHardwarePlatform Level = "hardware-platform"
)

// Rank orders levels: software < every hardware level. Hardware levels rank
// equally; organisation policy names a specific level when it cares.
func (l Level) Rank() int {
	switch l {
	case LevelSoftware:
		return 1
	case LevelHardwareTPM, LevelHardwarePKCS11, LevelHardwarePlatform:
		return 2
	}
	return 0
}

// Gate is an access condition a backend enforces inside its hardware, so that
// bypassing the Go-side policy does not bypass it.
type Gate string

// Gates.
const (
	// GateUnlockSecret: wrapping keys unseal only with the unlock secret
	// (TPM PolicyAuthValue, token PIN, platform credential), and the
	// hardware limits guessing.
	GateUnlockSecret Gate = "unlock_secret"
	// GateBootState: wrapping keys unseal only in the measured boot state
	// they were sealed to (TPM PolicyPCR).
	GateBootState Gate = "boot_state"
	// GateNonExportable: resident keys cannot leave the hardware.
	GateNonExportable Gate = "non_exportable"
	// GateDeviceUnlocked: keys are usable only while the device is
	// unlocked (platform lock screen).
	GateDeviceUnlocked Gate = "device_unlocked"
	// GateUserPresence: each use, or a use within a validity window,
	// requires user authentication the hardware verifies.
	GateUserPresence Gate = "user_presence"
	// GateDestroy: Destroy makes earlier copies of the state useless.
	GateDestroy Gate = "destroy"
)

// Algorithm names for resident keys.
const (
	AlgP256      = "ecdsa-p256"  // signing key held in hardware
	AlgAES256    = "aes-256"     // symmetric key held in hardware
	AlgSealedBox = "sealed-data" // sealed data objects (e.g. TPM keyedhash)
)

// Capabilities describe what a backend can do.
type Capabilities struct {
	Name  string // short backend name: "soft", "tpm", …
	Level Level
	// Resident lists the algorithms of keys the hardware holds itself.
	Resident []string
	// MaxSealSize is the largest secret Seal accepts, in bytes.
	MaxSealSize int
	// HardwareGates lists gates enforced by the hardware.
	HardwareGates []Gate
	// Attestation lists the evidence types the backend can produce.
	Attestation []string
}

// Holds reports whether alg is among the resident algorithms.
func (c Capabilities) Holds(alg string) bool { return contains(c.Resident, alg) }

// Enforces reports whether g is enforced in hardware.
func (c Capabilities) Enforces(g Gate) bool { return contains(c.HardwareGates, g) }

func contains[T comparable](list []T, x T) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

// Backend protects wrapping keys for one keystore.
type Backend interface {
	// Capabilities reports what the backend can do. It does not touch
	// the hardware and never fails.
	Capabilities() Capabilities
	// Provision creates fresh protection bound to secret and returns its
	// opaque, non-secret state.
	Provision(ctx context.Context, secret []byte) (state []byte, err error)
	// Open starts a session over state, checking secret.
	Open(ctx context.Context, state, secret []byte) (Session, error)
	// Destroy irrevocably destroys the protection described by state (the
	// device is revoked). It needs no secret: revocation must work on a
	// locked device.
	Destroy(ctx context.Context, state []byte) error
}

// Session is an unlocked backend. Sessions are safe for concurrent use.
type Session interface {
	// Seal protects secret (at most MaxSealSize bytes) for label.
	Seal(ctx context.Context, label string, secret []byte) ([]byte, error)
	// Unseal recovers a secret sealed for label in this backend's state.
	// The caller must zero the result when done.
	Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error)
	// Close ends the session; the session is unusable afterwards.
	Close() error
}

// BindingKeys is implemented by sessions whose hardware holds P-256 keys.
// Signers returned by it sign through the session: they are valid until the
// session's Close and return ErrClosed afterwards.
type BindingKeys interface {
	// CreateBindingKey creates a non-exportable ECDSA P-256 key inside the
	// hardware and returns its opaque, non-secret handle data for
	// LoadBindingKey.
	CreateBindingKey(ctx context.Context) (blob []byte, key crypto.Signer, err error)
	// LoadBindingKey makes a key created earlier usable again.
	LoadBindingKey(ctx context.Context, blob []byte) (crypto.Signer, error)
}

// Evidence is attestation evidence: an opaque, typed statement by the
// hardware about a key.
type Evidence struct {
	Type string // e.g. "tpm2-certify"
	Data []byte
}

// StoreCapabilities is implemented by backends whose capabilities differ
// from store to store, beyond what Capabilities reports for a new one: a
// PKCS#11 store on a key the user made on a PIV token has no destroy gate.
// CapabilitiesOf reports the store's from its state, without touching the
// hardware; callers that hold a state prefer it to Capabilities.
type StoreCapabilities interface {
	CapabilitiesOf(state []byte) Capabilities
}

// Attester is implemented by sessions that can attest their binding key.
type Attester interface {
	Attest(ctx context.Context, bindingBlob, nonce []byte) (Evidence, error)
}

// Errors every backend wraps so callers can tell failures apart.
var (
	// ErrBadSecret: the unlock secret is wrong.
	ErrBadSecret = errors.New("backend: wrong unlock secret")
	// ErrLockedOut: the hardware refuses attempts for now (dictionary
	// attack protection); wait or reset it as its owner.
	ErrLockedOut = errors.New("backend: locked out after too many wrong secrets")
	// ErrSealedData: sealed data or state is corrupt, foreign or tampered.
	ErrSealedData = errors.New("backend: sealed data does not open")
	// ErrDestroyed: the protection was destroyed (device revoked).
	ErrDestroyed = errors.New("backend: protection destroyed")
	// ErrUnavailable: the hardware is absent or unreachable.
	ErrUnavailable = errors.New("backend: hardware unavailable")
	// ErrTooLarge: the secret exceeds MaxSealSize.
	ErrTooLarge = errors.New("backend: secret too large to seal")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("backend: session closed")
	// ErrState: the state does not parse or names parameters out of bounds.
	ErrState = errors.New("backend: invalid state")
	// ErrHardwareFault: the hardware returned a wrong result (a signature
	// that does not verify, plaintext that does not authenticate, a
	// wrong length). It is never trusted.
	ErrHardwareFault = errors.New("backend: the hardware returned an invalid result")
	// ErrGate: a hardware gate is not satisfied; the error is a *GateError
	// naming it.
	ErrGate = errors.New("backend: a hardware gate is not satisfied")
)

// GateError reports a gate the hardware refused to pass: the boot state
// changed (GateBootState), the device is locked (GateDeviceUnlocked), the
// user has not authenticated recently enough (GateUserPresence), …
// It matches ErrGate with errors.Is.
type GateError struct {
	Gate   Gate
	Detail string
}

func (e *GateError) Error() string {
	if e.Detail == "" {
		return "backend: hardware gate " + string(e.Gate) + " not satisfied"
	}
	return "backend: hardware gate " + string(e.Gate) + " not satisfied: " + e.Detail
}

// Is makes errors.Is(err, ErrGate) true.
func (e *GateError) Is(target error) bool { return target == ErrGate }
