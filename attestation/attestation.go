// Package attestation connects hardware attestation evidence to the account
// device chain: what a device's evidence must be made over (Nonce), and
// verifiers that judge it for chain.Apply (chain.AttestationVerifier).
//
// Evidence is bound to the device it describes and to the link that adds
// it: its nonce is a hash over the account, the link type, the enrollment
// request's nonce (when there is one) and the device's id and public keys.
// Evidence copied into another device record, another account or another
// enrollment does not verify. Genesis and recovery links have no request
// nonce: their evidence is bound to the device's keys, not fresh.
package attestation

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/chain"
)

// Nonce returns the 32-byte value the device's hardware must attest over
// for the link described by in (in.Device.Evidence is ignored).
func Nonce(in chain.AttestationInput) ([]byte, error) {
	d := in.Device
	if d == nil || d.Identity == nil || d.Binding == nil {
		return nil, errors.New("attestation: the device has no binding key to attest")
	}
	bp, err := d.Binding.ECDH()
	if err != nil {
		return nil, fmt.Errorf("attestation: binding key: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("enigm/v1/attestation\x00"))
	h.Write([]byte{byte(in.Type)})
	h.Write(in.Account[:])
	h.Write([]byte{byte(len(in.Nonce))})
	h.Write(in.Nonce)
	h.Write(d.ID[:])
	fp := d.Identity.Fingerprint()
	h.Write(fp[:])
	kh := sha256.Sum256(d.KEM)
	h.Write(kh[:])
	h.Write(bp.Bytes())
	return h.Sum(nil), nil
}

// ErrEvidence reports evidence that does not verify.
var ErrEvidence = errors.New("attestation: evidence does not verify")

// TPM verifies "tpm2-certify" evidence against attestation keys it trusts
// (with the simulator: the backend's AttestationKey; with real TPMs, keys
// whose trust comes from the manufacturer's endorsement certificate).
type TPM struct {
	Trusted []attest.AK
}

var _ chain.AttestationVerifier = (*TPM)(nil)

// VerifyAttestation implements chain.AttestationVerifier.
func (v *TPM) VerifyAttestation(in chain.AttestationInput) error {
	d := in.Device
	if d == nil || d.Evidence == nil {
		return fmt.Errorf("%w: no evidence", ErrEvidence)
	}
	if d.Evidence.Type != attest.Type {
		return fmt.Errorf("%w: evidence type %q, this verifier judges %q", ErrEvidence, d.Evidence.Type, attest.Type)
	}
	nonce, err := Nonce(in)
	if err != nil {
		return err
	}
	res, err := attest.Verify(backend.Evidence{Type: d.Evidence.Type, Data: d.Evidence.Data}, nonce, v.Trusted...)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	if !res.Key.Equal(d.Binding) {
		return fmt.Errorf("%w: the evidence certifies another binding key than the device record's", ErrEvidence)
	}
	return nil
}
