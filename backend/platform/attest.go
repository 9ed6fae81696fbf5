package platform

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/internal/keymint"
	"github.com/enigm/enigm/internal/wire"
)

// EvidenceAndroidKey is the evidence type of this backend's attestation: an
// Android key attestation certificate chain for the binding key, plus a
// signature by the binding key over the verifier's nonce.
const EvidenceAndroidKey = "android-key-attestation+nonce-signature/v1"

// Nonce bounds for Attest.
const (
	MinNonce = 16
	MaxNonce = 64
)

const (
	evidenceVersion = 1
	maxEvidenceSize = 16 << 10
	maxChainCerts   = 8
)

// Attestation errors.
var (
	// ErrEvidence: the evidence does not parse or does not show what it
	// must (a hardware-generated P-256 signing key at TEE or StrongBox
	// level, a valid nonce signature).
	ErrEvidence = errors.New("platform: invalid attestation evidence")
	// ErrUntrusted: the certificate chain does not lead to a trusted root.
	ErrUntrusted = errors.New("platform: attestation chain not trusted")
	// ErrNonce: the evidence is not over the verifier's nonce.
	ErrNonce = errors.New("platform: attestation evidence is not over this nonce")
)

// evidence is the encoded Evidence.Data.
type evidence struct {
	Version  uint8  `cbor:"1,keyasint"`
	Chain    []byte `cbor:"2,keyasint"` // DER certificates, leaf first
	NonceSig []byte `cbor:"3,keyasint"` // ASN.1 ECDSA over nonceDigest(nonce)
}

func encodeEvidence(chain, sig []byte) (backend.Evidence, error) {
	b, err := wire.Marshal(evidence{Version: evidenceVersion, Chain: chain, NonceSig: sig})
	if err != nil {
		return backend.Evidence{}, err
	}
	if len(b) > maxEvidenceSize {
		return backend.Evidence{}, fmt.Errorf("%w: %d bytes", ErrEvidence, len(b))
	}
	return backend.Evidence{Type: EvidenceAndroidKey, Data: b}, nil
}

func nonceDigest(nonce []byte) [32]byte {
	return sha256.Sum256(append([]byte("enigm/v1/platform/attest-nonce\x00"), nonce...))
}

// Attested is what verified evidence says about a binding key.
type Attested struct {
	// Public is the attested binding key.
	Public *ecdsa.PublicKey
	// SecurityLevel: bridge.LevelTEE or bridge.LevelStrongBox.
	SecurityLevel string
	// Challenge the key was generated with.
	Challenge []byte
	// Hardware-enforced authorizations of the key.
	UnlockedDeviceRequired bool
	UserAuthType           int   // Android HardwareAuthenticatorType bits; 0 when no auth
	AuthTimeoutSeconds     int64 // 0: per use (or no auth)
}

// Android KeyMint values used below.
const (
	secLevelTEE       = 1
	secLevelStrongBox = 2
	tagPurpose        = 1
	tagAlgorithm      = 2
	tagECCurve        = 10
	tagNoAuthRequired = 503
	tagUserAuthType   = 504
	tagAuthTimeout    = 505
	tagUnlockedDevice = 509
	tagOrigin         = 702
	purposeSign       = 2
	algorithmEC       = 3
	curveP256         = 1
	originGenerated   = 0
)

// VerifyEvidence checks evidence from Attest against the verifier's nonce
// and trusted attestation roots (Google's attestation roots for real
// devices; the simulator's root in tests) at time now, and returns what it
// shows. It requires: a chain to one of roots; a leaf whose KeyDescription
// says the key was generated in a TEE or StrongBox, is an EC P-256 signing
// key, with attestation and KeyMint security levels equal; and a valid
// signature by the leaf's key over nonce.
func VerifyEvidence(ev backend.Evidence, nonce []byte, roots *x509.CertPool, now time.Time) (*Attested, error) {
	if roots == nil {
		return nil, fmt.Errorf("%w: no trusted roots configured", ErrUntrusted)
	}
	a, certs, err := parseEvidence(ev, nonce)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return a, nil
}

// checkEvidence is VerifyEvidence without the chain to a root, plus the
// challenge the key was generated with: what the backend checks before
// handing evidence on.
func checkEvidence(ev backend.Evidence, nonce, challenge []byte) (*Attested, error) {
	a, _, err := parseEvidence(ev, nonce)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a.Challenge, challenge) {
		return nil, fmt.Errorf("%w: the key was attested over another challenge", ErrEvidence)
	}
	return a, nil
}

func parseEvidence(ev backend.Evidence, nonce []byte) (*Attested, []*x509.Certificate, error) {
	if ev.Type != EvidenceAndroidKey {
		return nil, nil, fmt.Errorf("%w: type %q, want %q", ErrEvidence, ev.Type, EvidenceAndroidKey)
	}
	if len(nonce) < MinNonce || len(nonce) > MaxNonce {
		return nil, nil, fmt.Errorf("%w: nonce of %d bytes", ErrNonce, len(nonce))
	}
	var e evidence
	if err := wire.Unmarshal(ev.Data, &e, maxEvidenceSize); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	if e.Version != evidenceVersion {
		return nil, nil, fmt.Errorf("%w: version %d", ErrEvidence, e.Version)
	}
	certs, err := x509.ParseCertificates(e.Chain)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate chain: %v", ErrEvidence, err)
	}
	if len(certs) < 2 || len(certs) > maxChainCerts {
		return nil, nil, fmt.Errorf("%w: chain of %d certificates", ErrEvidence, len(certs))
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().Name != "P-256" {
		return nil, nil, fmt.Errorf("%w: the attested key is not an ECDSA P-256 key", ErrEvidence)
	}
	a, err := parseKeyDescription(leaf)
	if err != nil {
		return nil, nil, err
	}
	a.Public = pub
	d := nonceDigest(nonce)
	if !ecdsa.VerifyASN1(pub, d[:], e.NonceSig) {
		return nil, nil, fmt.Errorf("%w: the nonce signature does not verify under the attested key", ErrNonce)
	}
	return a, certs, nil
}

func parseKeyDescription(leaf *x509.Certificate) (*Attested, error) {
	var ext []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(keymint.OID) {
			if ext != nil {
				return nil, fmt.Errorf("%w: two KeyDescription extensions", ErrEvidence)
			}
			ext = e.Value
		}
	}
	if ext == nil {
		return nil, fmt.Errorf("%w: the leaf has no key attestation extension", ErrEvidence)
	}
	var kd keymint.KeyDescription
	rest, err := asn1.Unmarshal(ext, &kd)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: KeyDescription does not parse", ErrEvidence)
	}
	a := &Attested{Challenge: kd.AttestationChallenge}
	switch {
	case kd.AttestationSecurityLevel != kd.KeyMintSecurityLevel:
		return nil, fmt.Errorf("%w: attestation and KeyMint security levels differ", ErrEvidence)
	case kd.AttestationSecurityLevel == secLevelTEE:
		a.SecurityLevel = bridge.LevelTEE
	case kd.AttestationSecurityLevel == secLevelStrongBox:
		a.SecurityLevel = bridge.LevelStrongBox
	default:
		return nil, fmt.Errorf("%w: the key is not in hardware (security level %d)", ErrEvidence, kd.AttestationSecurityLevel)
	}
	auth, err := parseAuthorizations(kd.HardwareEnforced)
	if err != nil {
		return nil, err
	}
	switch {
	case !auth.has[tagOrigin] || auth.origin != originGenerated:
		return nil, fmt.Errorf("%w: the key was not generated in the hardware", ErrEvidence)
	case auth.algorithm != algorithmEC || auth.curve != curveP256:
		return nil, fmt.Errorf("%w: the hardware does not enforce an EC P-256 key", ErrEvidence)
	case !auth.signs:
		return nil, fmt.Errorf("%w: the key is not a signing key", ErrEvidence)
	}
	a.UnlockedDeviceRequired = auth.has[tagUnlockedDevice]
	a.UserAuthType = int(auth.userAuthType)
	a.AuthTimeoutSeconds = auth.authTimeout
	return a, nil
}

type authorizations struct {
	has          map[int]bool
	signs        bool
	algorithm    int64
	curve        int64
	origin       int64
	userAuthType int64
	authTimeout  int64
}

// parseAuthorizations reads the AuthorizationList fields this package uses
// (each an EXPLICIT context-specific tag) and skips the others.
func parseAuthorizations(list asn1.RawValue) (*authorizations, error) {
	bad := func(what string) (*authorizations, error) {
		return nil, fmt.Errorf("%w: hardware-enforced authorization list: %s", ErrEvidence, what)
	}
	if list.Class != asn1.ClassUniversal || list.Tag != asn1.TagSequence || !list.IsCompound {
		return bad("not a SEQUENCE")
	}
	a := &authorizations{has: map[int]bool{}}
	rest := list.Bytes
	for len(rest) > 0 {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			return bad("element does not parse")
		}
		if f.Class != asn1.ClassContextSpecific || !f.IsCompound {
			return bad("element is not an explicit tag")
		}
		if a.has[f.Tag] {
			return bad(fmt.Sprintf("tag %d repeated", f.Tag))
		}
		a.has[f.Tag] = true
		integer := func(dst *int64) error {
			r, err := asn1.Unmarshal(f.Bytes, dst)
			if err != nil || len(r) != 0 {
				return fmt.Errorf("%w: tag %d is not one INTEGER", ErrEvidence, f.Tag)
			}
			return nil
		}
		switch f.Tag {
		case tagPurpose:
			var set []int64
			r, err := asn1.UnmarshalWithParams(f.Bytes, &set, "set")
			if err != nil || len(r) != 0 {
				return bad("purpose is not a SET OF INTEGER")
			}
			for _, p := range set {
				if p == purposeSign {
					a.signs = true
				}
			}
		case tagAlgorithm:
			err = integer(&a.algorithm)
		case tagECCurve:
			err = integer(&a.curve)
		case tagOrigin:
			err = integer(&a.origin)
		case tagUserAuthType:
			err = integer(&a.userAuthType)
		case tagAuthTimeout:
			err = integer(&a.authTimeout)
		case tagUnlockedDevice, tagNoAuthRequired:
			if !bytes.Equal(f.Bytes, []byte{0x05, 0x00}) {
				return bad(fmt.Sprintf("tag %d is not NULL", f.Tag))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}
