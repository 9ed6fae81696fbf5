// Package attestation connects hardware attestation evidence to the account
// device chain: what a device's evidence must be made over (Nonce), and
// verifiers that judge it for chain.Apply (chain.AttestationVerifier).
//
// # What evidence binds
//
// The nonce a device's hardware attests over is a hash of
//
//   - the link type that adds the device (genesis, add_device,
//     replace_device, recovery_request),
//   - the account (zero for genesis),
//   - the head the link follows (zero for genesis): the evidence is good
//     at one position of one chain only,
//   - the enrollment request's nonce (add_device, replace_device),
//   - the hash of the whole device record without its evidence: id, name,
//     identity, KEM and binding keys, and the claimed protection level.
//
// Evidence copied into another device record (another name, another
// level, other keys), another account, another enrollment request or
// another chain position does not verify. Genesis and recovery requests
// have no request nonce: their evidence is fresh only to the extent that
// the device record (new keys) and the head are.
//
// # What the TPM verifier checks
//
// [TPM] accepts "tpm2-certify" evidence only for a record that claims
// hardware-tpm, only under a trusted attestation key, only over the nonce
// above, and only for the record's own binding key; with [TPM.Boot] set it
// also requires a TPM2_Quote, by the same key over the same nonce, of
// exactly the PCRs the verifier names with values it allows.
package attestation

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

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
	if len(in.Nonce) > 255 {
		return nil, fmt.Errorf("attestation: request nonce of %d bytes", len(in.Nonce))
	}
	rec := *d
	rec.Evidence = nil
	rh, err := rec.Hash()
	if err != nil {
		return nil, fmt.Errorf("attestation: device record: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("enigm/v1/attestation/v2\x00"))
	h.Write([]byte{byte(in.Type)})
	h.Write(in.Account[:])
	h.Write(in.Prev[:])
	h.Write([]byte{byte(len(in.Nonce))})
	h.Write(in.Nonce)
	h.Write(rh[:])
	return h.Sum(nil), nil
}

// Errors. A verifier's error wraps one of them; chain.Apply wraps it in
// chain.ErrAttestation.
var (
	// ErrEvidence reports evidence that does not verify, or does not fit
	// the device record that carries it.
	ErrEvidence = errors.New("attestation: evidence does not verify")
	// ErrBootState reports a measured boot state the verifier does not
	// allow: no boot-state quote where one is required, a quote over other
	// PCRs, or PCR values outside the allowed sets.
	ErrBootState = errors.New("attestation: the device's measured boot state is not allowed")
)

// TPM verifies "tpm2-certify" evidence against attestation keys it trusts
// (with the simulator: the backend's AttestationKey; with real TPMs, keys
// whose trust comes from the manufacturer's endorsement certificate).
type TPM struct {
	Trusted []attest.AK
	// Boot, when set, requires a boot-state quote with allowed PCR values.
	// Without it a quote, if present, is checked (signature, nonce) but
	// its PCR values are not compared with anything.
	Boot *BootState
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
	if d.Level != chain.LevelHardwareTPM {
		return fmt.Errorf("%w: TPM evidence in a record that claims protection level %q, not %q", ErrEvidence, d.Level, chain.LevelHardwareTPM)
	}
	nonce, err := Nonce(in)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	res, err := attest.Verify(backend.Evidence{Type: d.Evidence.Type, Data: d.Evidence.Data}, nonce, v.Trusted...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	if !res.Key.Equal(d.Binding) {
		return fmt.Errorf("%w: the evidence certifies another binding key than the device record's", ErrEvidence)
	}
	if v.Boot != nil {
		return v.Boot.check(res)
	}
	return nil
}

// BootState is the measured boot state a verifier requires of TPM devices:
// the evidence must hold a TPM2_Quote of exactly the PCRs the allowed sets
// name (SHA-256 bank), and the quoted digest must be that of one set. A
// device meets it only if its TPM keystore is bound to those PCRs (the
// quote covers the store's PCR selection). Build it with NewBootState or
// ParseBootState.
type BootState struct {
	pcrs    []int
	digests [][]byte // SHA-256 of each allowed set's values, ascending PCR order
}

// MaxBootStates bounds the allowed sets of a BootState.
const MaxBootStates = 256

// NewBootState returns the requirement that a device's quoted PCRs hold
// one of the allowed sets of values. Each set maps a SHA-256 PCR index
// (0–23) to its 32-byte value; all sets name the same PCRs, at least one.
func NewBootState(allowed ...map[int][]byte) (*BootState, error) {
	if len(allowed) == 0 || len(allowed) > MaxBootStates {
		return nil, fmt.Errorf("attestation: boot state: %d allowed PCR sets, want 1–%d", len(allowed), MaxBootStates)
	}
	b := &BootState{}
	for i, set := range allowed {
		pcrs := make([]int, 0, len(set))
		for p, v := range set {
			if p < 0 || p > 23 {
				return nil, fmt.Errorf("attestation: boot state: PCR %d outside 0–23", p)
			}
			if len(v) != sha256.Size {
				return nil, fmt.Errorf("attestation: boot state: PCR %d value of %d bytes, want %d (SHA-256 bank)", p, len(v), sha256.Size)
			}
			pcrs = append(pcrs, p)
		}
		slices.Sort(pcrs)
		switch {
		case len(pcrs) == 0:
			return nil, errors.New("attestation: boot state: an allowed set names no PCR")
		case i == 0:
			b.pcrs = pcrs
		case !slices.Equal(pcrs, b.pcrs):
			return nil, fmt.Errorf("attestation: boot state: allowed set %d names PCRs %v, set 0 names %v", i, pcrs, b.pcrs)
		}
		h := sha256.New()
		for _, p := range pcrs {
			h.Write(set[p])
		}
		b.digests = append(b.digests, h.Sum(nil))
	}
	return b, nil
}

// PCRs returns the PCR selection the requirement names, ascending.
func (b *BootState) PCRs() []int { return slices.Clone(b.pcrs) }

func (b *BootState) check(res *attest.Result) error {
	if res.PCRDigest == nil {
		return fmt.Errorf("%w: the evidence holds no boot-state quote; the verifier requires one over PCRs %v (the device's TPM store must be bound to them)", ErrBootState, b.pcrs)
	}
	if !slices.Equal(res.PCRs, b.pcrs) {
		return fmt.Errorf("%w: the quote covers PCRs %v, the verifier requires exactly %v", ErrBootState, res.PCRs, b.pcrs)
	}
	for _, d := range b.digests {
		if subtle.ConstantTimeCompare(d, res.PCRDigest) == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: the quoted values of PCRs %v are none of the %d allowed sets", ErrBootState, b.pcrs, len(b.digests))
}

// ParseBootState reads a boot-state requirement from JSON:
//
//	{"version": 1, "allowed": [{"0": "<64 hex digits>", "7": "<64 hex digits>"}, …]}
//
// Each allowed entry is one acceptable set of SHA-256 PCR values (as
// tpm2_pcrread sha256:0,7 prints them on a device in the state to allow).
func ParseBootState(data []byte) (*BootState, error) {
	var f struct {
		Version int                 `json:"version"`
		Allowed []map[string]string `json:"allowed"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("attestation: boot state file: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("attestation: boot state file: version %d, want 1", f.Version)
	}
	sets := make([]map[int][]byte, 0, len(f.Allowed))
	for i, s := range f.Allowed {
		set := make(map[int][]byte, len(s))
		for k, v := range s {
			p, err := strconv.Atoi(k)
			if err != nil || strconv.Itoa(p) != k {
				return nil, fmt.Errorf("attestation: boot state file: allowed set %d: %q is not a PCR number", i, k)
			}
			b, err := hex.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("attestation: boot state file: allowed set %d, PCR %d: %w", i, p, err)
			}
			set[p] = b
		}
		sets = append(sets, set)
	}
	return NewBootState(sets...)
}
