package tpm

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend"
)

// ErrBootState reports that the measured boot state (the PCRs a store is
// bound to) differs from the one recorded when the store was provisioned:
// the hardware gate [backend.GateBootState] is not satisfied. It is a
// *backend.GateError, so errors.Is(err, backend.ErrGate) holds; the store is
// intact, and opens again in the boot state it was sealed to.
var ErrBootState error = &backend.GateError{Gate: backend.GateBootState,
	Detail: "the measured boot state (PCRs) differs from the one the store was sealed to"}

// isTPM reports whether err is a response code from the TPM (as opposed to
// a transport failure).
func isTPM(err error) bool {
	var rc tpm2.TPMRC
	return errors.As(err, &rc)
}

// authErr maps the failure of a command authorized with a secret-derived
// auth value. other is the sentinel for TPM errors that are not about the
// secret; transport failures map to ErrUnavailable.
func authErr(what string, err error, other error) error {
	var pcr *policyPCRError
	switch {
	case errors.Is(err, tpm2.TPMRCLockout):
		return fmt.Errorf("%w: %s: the TPM refuses authorizations after too many wrong secrets; wait for its recovery time or reset it with the lockout authorization", backend.ErrLockedOut, what)
	case errors.As(err, &pcr):
		return fmt.Errorf("%s: %w", what, ErrBootState)
	case errors.Is(err, tpm2.TPMRCAuthFail), errors.Is(err, tpm2.TPMRCBadAuth):
		return fmt.Errorf("%w: %s", backend.ErrBadSecret, what)
	case !isTPM(err):
		return fmt.Errorf("%w: %s: %v", backend.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %v", other, what, err)
}

// loadErr maps the failure of loading an object under the store key.
func loadErr(what string, err error, corrupt error) error {
	switch {
	case !isTPM(err):
		return fmt.Errorf("%w: %s: %v", backend.ErrUnavailable, what, err)
	case errors.Is(err, tpm2.TPMRCHandle):
		// The parent (store key) is gone: evicted by Destroy.
		return fmt.Errorf("%w: %s: the store key is no longer in the TPM", backend.ErrDestroyed, what)
	case errors.Is(err, tpm2.TPMRCObjectMemory), errors.Is(err, tpm2.TPMRCRetry), errors.Is(err, tpm2.TPMRCTesting):
		return fmt.Errorf("%w: %s: TPM busy: %v", backend.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: the TPM refuses the object (altered, or created under another store): %v", corrupt, what, err)
}

// tpmErr maps other failures: TPM refusals to ErrUnavailable with context
// unless they are transport failures, which are ErrUnavailable as well.
func tpmErr(what string, err error) error {
	if errors.Is(err, tpm2.TPMRCLockout) {
		return fmt.Errorf("%w: %s", backend.ErrLockedOut, what)
	}
	return fmt.Errorf("%w: %s: %v", backend.ErrUnavailable, what, err)
}

// createErr maps the failure of creating an object under the store key.
func createErr(what string, err error) error {
	if isTPM(err) && errors.Is(err, tpm2.TPMRCHandle) {
		return fmt.Errorf("%w: %s: the store key is no longer in the TPM", backend.ErrDestroyed, what)
	}
	return tpmErr(what, err)
}
