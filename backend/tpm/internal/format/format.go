// Package format holds the TPM backend's persisted and exchanged encodings:
// the backend state, the object blobs (sealed data, binding keys) and the
// attestation evidence. All are strict deterministic CBOR (internal/wire)
// with integer keys; TPM structures inside them are carried as their TPM
// wire bytes and parsed strictly by [ParsePublic], [ParseAttest] and
// [ParseSignature].
//
// Every decoder bounds its input, rejects non-canonical encodings and runs a
// Validate on the result. Enum values are never reordered.
package format

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/internal/wire"
)

// Size limits, in bytes.
const (
	MaxState    = 1024
	MaxObject   = 1024
	MaxEvidence = 2048
	// MaxPublic bounds a TPMT_PUBLIC: a P-256 key or keyed-hash object
	// is about 120 bytes.
	MaxPublic = 512
	// MaxPrivate bounds a TPM2B_PRIVATE's contents (integrity HMAC, IV
	// and the encrypted sensitive area).
	MaxPrivate = 512
	// MaxAttest bounds a TPMS_ATTEST.
	MaxAttest = 512
	// MaxSignature bounds a TPMT_SIGNATURE.
	MaxSignature = 256
)

// Fixed sizes.
const (
	SaltSize   = 32
	DigestSize = 32 // SHA-256
	NameSize   = 2 + DigestSize
)

// StateVersion is the only state version.
const StateVersion = 1

// Persistent-handle bounds: the owner's persistent range (TPM 2.0 Part 2,
// 7.2: 0x81000000–0x817FFFFF).
const (
	MinPersistent = 0x81000000
	MaxPersistent = 0x817FFFFF
)

// MaxPCR bounds PCR indices: PC Client TPMs have 24 PCRs (0–23).
const MaxPCR = 23

// ErrFormat reports input that does not decode or does not validate.
var ErrFormat = errors.New("tpm format: malformed")

// State is the persisted, non-secret backend state.
//
// The check object's authPolicy commits to every other field (see
// [State.Commitment]), so a changed field is detected before any
// DA-protected TPM command runs.
type State struct {
	Version uint8 `cbor:"1,keyasint"`
	// Handle is the persistent handle of the store's storage key.
	Handle uint32 `cbor:"2,keyasint"`
	// StoreName is the TPM Name of that key: 0x000B || SHA-256(TPMT_PUBLIC).
	StoreName []byte `cbor:"3,keyasint"`
	// Salt is the HKDF salt for the auth values derived from the secret.
	Salt []byte `cbor:"4,keyasint"`
	// PCRMask selects SHA-256 PCRs for PolicyPCR: bit i is PCR i; 0 = none.
	PCRMask uint32 `cbor:"5,keyasint,omitempty"`
	// PCRDigest is SHA-256 over the selected PCR values at provisioning;
	// present iff PCRMask is not zero.
	PCRDigest []byte `cbor:"6,keyasint,omitempty"`
	// CheckPublic and CheckPrivate are the check object, a sealed-data
	// object whose unsealing proves the secret.
	CheckPublic  []byte `cbor:"7,keyasint,omitempty"`
	CheckPrivate []byte `cbor:"8,keyasint,omitempty"`
}

// Validate checks field sizes and ranges.
func (s *State) Validate() error {
	switch {
	case s.Version != StateVersion:
		return fmt.Errorf("%w: state version %d, want %d", ErrFormat, s.Version, StateVersion)
	case s.Handle < MinPersistent || s.Handle > MaxPersistent:
		return fmt.Errorf("%w: handle 0x%08x is not an owner persistent handle", ErrFormat, s.Handle)
	case len(s.StoreName) != NameSize || binary.BigEndian.Uint16(s.StoreName) != uint16(tpm2.TPMAlgSHA256):
		return fmt.Errorf("%w: store key name is not a SHA-256 name", ErrFormat)
	case len(s.Salt) != SaltSize:
		return fmt.Errorf("%w: salt has %d bytes, want %d", ErrFormat, len(s.Salt), SaltSize)
	case s.PCRMask>>(MaxPCR+1) != 0:
		return fmt.Errorf("%w: PCR mask 0x%x selects PCRs above %d", ErrFormat, s.PCRMask, MaxPCR)
	case (s.PCRMask == 0) != (len(s.PCRDigest) == 0):
		return fmt.Errorf("%w: PCR digest present without PCRs or missing", ErrFormat)
	case s.PCRMask != 0 && len(s.PCRDigest) != DigestSize:
		return fmt.Errorf("%w: PCR digest has %d bytes", ErrFormat, len(s.PCRDigest))
	case len(s.CheckPublic) == 0 || len(s.CheckPublic) > MaxPublic:
		return fmt.Errorf("%w: check object public area has %d bytes", ErrFormat, len(s.CheckPublic))
	case len(s.CheckPrivate) == 0 || len(s.CheckPrivate) > MaxPrivate:
		return fmt.Errorf("%w: check object private area has %d bytes", ErrFormat, len(s.CheckPrivate))
	}
	return nil
}

// Commitment is the canonical encoding of the state without its check
// object, prefixed by a domain label; the check object's policy binds it.
func (s *State) Commitment() []byte {
	c := *s
	c.CheckPublic, c.CheckPrivate = nil, nil
	enc, err := wire.Marshal(c)
	if err != nil { // cannot happen: a fixed, float-free type
		return nil
	}
	h := sha256.New()
	h.Write([]byte("enigm/v1/tpm/state\x00"))
	h.Write(enc)
	return h.Sum(nil)
}

// PCRs lists the selected PCR indices in ascending order.
func (s *State) PCRs() []uint { return MaskPCRs(s.PCRMask) }

// MaskPCRs lists the PCR indices whose bits are set in mask.
func MaskPCRs(mask uint32) []uint {
	var out []uint
	for i := uint(0); i <= MaxPCR; i++ {
		if mask&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// validator is a value of this package's formats: it checks itself.
type validator interface{ Validate() error }

// marshalValid encodes v after validating it.
func marshalValid(v validator) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return wire.Marshal(v)
}

// parseValid decodes b strictly (at most max bytes) into a new T and
// validates it; a decoding failure is ErrFormat naming what.
func parseValid[T any, P interface {
	*T
	validator
}](b []byte, max int, what string) (*T, error) {
	v := new(T)
	if err := wire.Unmarshal(b, v, max); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
	}
	if err := P(v).Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalState encodes s after validating it.
func MarshalState(s *State) ([]byte, error) { return marshalValid(s) }

// ParseState decodes and validates a state.
func ParseState(b []byte) (*State, error) { return parseValid[State](b, MaxState, "state") }

// Object kinds. Never reorder.
const (
	KindSealed  uint8 = 1 // sealed-data object (a wrapping key)
	KindBinding uint8 = 2 // ECDSA P-256 binding key
)

// Object is a TPM object created under the store key: its public area and
// its private area (encrypted and integrity-protected by the TPM under the
// parent). It holds no secret in the clear.
type Object struct {
	Kind    uint8  `cbor:"1,keyasint"`
	Public  []byte `cbor:"2,keyasint"` // TPMT_PUBLIC
	Private []byte `cbor:"3,keyasint"` // TPM2B_PRIVATE contents
}

// Validate checks the kind and sizes.
func (o *Object) Validate() error {
	switch {
	case o.Kind != KindSealed && o.Kind != KindBinding:
		return fmt.Errorf("%w: unknown object kind %d", ErrFormat, o.Kind)
	case len(o.Public) == 0 || len(o.Public) > MaxPublic:
		return fmt.Errorf("%w: public area has %d bytes", ErrFormat, len(o.Public))
	case len(o.Private) == 0 || len(o.Private) > MaxPrivate:
		return fmt.Errorf("%w: private area has %d bytes", ErrFormat, len(o.Private))
	}
	return nil
}

// MarshalObject encodes o after validating it.
func MarshalObject(o *Object) ([]byte, error) { return marshalValid(o) }

// ParseObject decodes and validates an object blob of the given kind.
func ParseObject(b []byte, kind uint8) (*Object, error) {
	o, err := parseValid[Object](b, MaxObject, "object")
	if err != nil {
		return nil, err
	}
	if o.Kind != kind {
		return nil, fmt.Errorf("%w: object of kind %d, want %d", ErrFormat, o.Kind, kind)
	}
	return o, nil
}

// EvidenceVersion is the only evidence version.
const EvidenceVersion = 1

// Evidence is the data of a "tpm2-certify" evidence: a TPM2_Certify of the
// binding key by an attestation key over the caller's nonce, and optionally
// a TPM2_Quote of the store's PCR selection by the same key and nonce.
type Evidence struct {
	Version     uint8  `cbor:"1,keyasint"`
	AKPublic    []byte `cbor:"2,keyasint"`           // TPMT_PUBLIC of the attestation key
	KeyPublic   []byte `cbor:"3,keyasint"`           // TPMT_PUBLIC of the certified key
	CertifyInfo []byte `cbor:"4,keyasint"`           // TPMS_ATTEST (TPM_ST_ATTEST_CERTIFY)
	CertifySig  []byte `cbor:"5,keyasint"`           // TPMT_SIGNATURE over CertifyInfo
	Quote       []byte `cbor:"6,keyasint,omitempty"` // TPMS_ATTEST (TPM_ST_ATTEST_QUOTE)
	QuoteSig    []byte `cbor:"7,keyasint,omitempty"` // TPMT_SIGNATURE over Quote
}

// Validate checks the version and sizes.
func (e *Evidence) Validate() error {
	switch {
	case e.Version != EvidenceVersion:
		return fmt.Errorf("%w: evidence version %d", ErrFormat, e.Version)
	case len(e.AKPublic) == 0 || len(e.AKPublic) > MaxPublic,
		len(e.KeyPublic) == 0 || len(e.KeyPublic) > MaxPublic:
		return fmt.Errorf("%w: evidence public area size", ErrFormat)
	case len(e.CertifyInfo) == 0 || len(e.CertifyInfo) > MaxAttest,
		len(e.CertifySig) == 0 || len(e.CertifySig) > MaxSignature:
		return fmt.Errorf("%w: evidence certify size", ErrFormat)
	case (len(e.Quote) == 0) != (len(e.QuoteSig) == 0),
		len(e.Quote) > MaxAttest || len(e.QuoteSig) > MaxSignature:
		return fmt.Errorf("%w: evidence quote size", ErrFormat)
	}
	return nil
}

// MarshalEvidence encodes e after validating it.
func MarshalEvidence(e *Evidence) ([]byte, error) { return marshalValid(e) }

// ParseEvidence decodes and validates evidence data.
func ParseEvidence(b []byte) (*Evidence, error) {
	return parseValid[Evidence](b, MaxEvidence, "evidence")
}

// ParsePublic strictly decodes a TPMT_PUBLIC: the bytes must be exactly
// the TPM encoding of the decoded value, with nothing trailing. It never
// panics.
func ParsePublic(b []byte) (*tpm2.TPMTPublic, error) {
	return parseStrict[tpm2.TPMTPublic](b, MaxPublic, "public area")
}

// ParseAttest strictly decodes a TPMS_ATTEST.
func ParseAttest(b []byte) (*tpm2.TPMSAttest, error) {
	return parseStrict[tpm2.TPMSAttest](b, MaxAttest, "attestation")
}

// ParseSignature strictly decodes a TPMT_SIGNATURE.
func ParseSignature(b []byte) (*tpm2.TPMTSignature, error) {
	return parseStrict[tpm2.TPMTSignature](b, MaxSignature, "signature")
}

func parseStrict[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte, max int, what string) (out *T, err error) {
	if len(b) == 0 || len(b) > max {
		return nil, fmt.Errorf("%w: %s has %d bytes, limit %d", ErrFormat, what, len(b), max)
	}
	defer func() {
		// go-tpm's reflection-based codec may panic on values it cannot
		// re-encode; input must never crash the process.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: %s does not decode", ErrFormat, what)
		}
	}()
	v, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, fmt.Errorf("%w: %s is not canonical or has trailing bytes", ErrFormat, what)
	}
	return v, nil
}

// Name is the TPM Name of an object with a SHA-256 nameAlg whose
// TPMT_PUBLIC encoding is pub: 0x000B || SHA-256(pub).
func Name(pub []byte) []byte {
	sum := sha256.Sum256(pub)
	return append([]byte{0x00, 0x0b}, sum[:]...)
}

// P256Public returns the ECDSA public key of an ECC NIST P-256 public area,
// checking that the point is on the curve.
func P256Public(p *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if p.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("%w: not an ECC key", ErrFormat)
	}
	parms, err := p.Parameters.ECCDetail()
	if err != nil || parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("%w: not a P-256 key", ErrFormat)
	}
	pt, err := p.Unique.ECC()
	if err != nil || len(pt.X.Buffer) != 32 || len(pt.Y.Buffer) != 32 {
		return nil, fmt.Errorf("%w: malformed P-256 point", ErrFormat)
	}
	raw := append(append([]byte{4}, pt.X.Buffer...), pt.Y.Buffer...)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: P-256 point: %v", ErrFormat, err)
	}
	return k, nil
}
