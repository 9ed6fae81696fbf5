// Package hybrid implements Enigm's hybrid signatures: Ed25519 and
// ML-DSA-65 (FIPS 204), both over the same domain-separated message. A hybrid
// signature is valid only if both halves verify; a key or signature without
// the ML-DSA-65 half is rejected, never downgraded.
//
// # Message construction
//
// Both halves sign the same message M':
//
//	M' = "enigm-hybrid-v1" || 0x00 || u8(len(ctx)) || ctx || SHA-256(pk) || msg
//
// where ctx is the signing context ("enigm/v1/<purpose>", see [Context]) and
// pk is the 1,984-byte encoding of the hybrid public key. Binding the whole
// public key means a half lifted from one hybrid key cannot be recombined with
// the other half of a different key. ML-DSA-65 additionally receives ctx as
// its FIPS 204 context string.
//
// # Encodings
//
// A public key is Ed25519 (32 bytes) followed by ML-DSA-65 (1,952 bytes). A
// signature is Ed25519 (64 bytes) followed by ML-DSA-65 (3,309 bytes). Both
// have fixed lengths; anything else is an error.
//
// # Weak keys
//
// A public key is accepted only if its Ed25519 half is the canonical
// encoding of a point of the prime-order subgroup other than the identity
// (see [ErrWeakKey]). crypto/ed25519 verifies any point that decodes, and
// under a small-order point a single constant signature (R the identity,
// S = 0) verifies for every message: the hybrid key would rest on ML-DSA-65
// alone. Honest keys, [a]B for a clamped scalar a, always pass; the checks
// cost one point decoding and two scalar multiplications per parsed key.
//
// # Secrets
//
// A [PrivateKey] is created from a 64-byte seed (Ed25519 seed || ML-DSA-65
// seed). The seed must be kept secret; this package never returns it. The
// keystore stores seeds only inside wrapped records.
package hybrid

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"filippo.io/mldsa"
)

// Sizes of the encodings.
const (
	SeedSize      = ed25519.SeedSize + mldsa.PrivateKeySize            // 64
	PublicKeySize = ed25519.PublicKeySize + mldsa.MLDSA65PublicKeySize // 1984
	SignatureSize = ed25519.SignatureSize + mldsa.MLDSA65SignatureSize // 3373

	// MaxContextSize bounds the signing context (FIPS 204 allows 255).
	MaxContextSize = 128
)

const messagePrefix = "enigm-hybrid-v1\x00"

// Errors returned by this package. Callers compare with errors.Is.
var (
	// ErrMissingPQ reports a key or signature that lacks its ML-DSA-65
	// half. Such input is always rejected; there is no classical-only mode.
	ErrMissingPQ = errors.New("hybrid: the ML-DSA-65 half is missing")
	// ErrInvalidSignature reports a signature where at least one half does
	// not verify.
	ErrInvalidSignature = errors.New("hybrid: signature does not verify")
	// ErrMalformed reports an encoding of the wrong size or form.
	ErrMalformed = errors.New("hybrid: malformed encoding")
	// ErrContext reports an invalid signing context.
	ErrContext = errors.New("hybrid: invalid signing context")
	// ErrWeakKey reports a public key whose Ed25519 half is not a point an
	// honest key generator can produce: not on the curve, a non-canonical
	// encoding, a small-order point (one of the eight torsion points,
	// including the identity), or a point with a torsion component. Such a
	// key is refused when it is parsed; the key must be generated again.
	ErrWeakKey = errors.New("hybrid: weak Ed25519 public key")
)

// PublicKey is a hybrid Ed25519 + ML-DSA-65 public key.
type PublicKey struct {
	ed   ed25519.PublicKey
	pq   *mldsa.PublicKey
	enc  []byte   // ed || pq, PublicKeySize bytes
	hash [32]byte // SHA-256(enc)
}

// NewPublicKey builds a public key from its two halves. An empty ML-DSA half
// returns ErrMissingPQ; a weak Ed25519 half (small-order, with a torsion
// component, non-canonical or not on the curve) returns ErrWeakKey.
func NewPublicKey(ed25519Key, mldsaKey []byte) (*PublicKey, error) {
	if len(mldsaKey) == 0 {
		return nil, ErrMissingPQ
	}
	if len(ed25519Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrMalformed, len(ed25519Key), ed25519.PublicKeySize)
	}
	if err := checkEd25519(ed25519Key); err != nil {
		return nil, err
	}
	pq, err := mldsa.NewPublicKey(mldsa.MLDSA65(), mldsaKey)
	if err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-65 public key: %v", ErrMalformed, err)
	}
	enc := make([]byte, 0, PublicKeySize)
	enc = append(enc, ed25519Key...)
	enc = append(enc, mldsaKey...)
	return &PublicKey{
		ed:   ed25519.PublicKey(enc[:ed25519.PublicKeySize:ed25519.PublicKeySize]),
		pq:   pq,
		enc:  enc,
		hash: sha256.Sum256(enc),
	}, nil
}

// minusOne is L-1 (the scalar -1 mod L): [L-1]P = -P exactly when [L]P is
// the identity, i.e. when P has no torsion component.
var minusOne = func() *edwards25519.Scalar {
	one := [32]byte{1}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(one[:])
	if err != nil {
		panic(err)
	}
	return s.Negate(s)
}()

// An Ed25519 public key's weakness; weakNone for a key an honest
// generator can produce.
type weakness int

const (
	weakNone         weakness = iota
	weakOffCurve              // no point has this encoding
	weakNonCanonical          // y >= p, or x = 0 with the sign bit set
	weakSmallOrder            // one of the eight torsion points ([8]P = O)
	weakTorsion               // a torsion component ([L]P != O)
)

var weakReason = [...]string{
	weakOffCurve:     "is not a point on the curve",
	weakNonCanonical: "is a non-canonical point encoding",
	weakSmallOrder:   "is a small-order point (a constant signature would verify for many or all messages)",
	weakTorsion:      "has a torsion component (it is not in the prime-order subgroup)",
}

// ed25519Weakness judges an Ed25519 public key: accepted only if it is the
// canonical encoding of a point of the prime-order subgroup other than the
// identity. The checks run in this order, so a key with several weaknesses
// is named by the first. (No point of the prime-order subgroup has a
// non-canonical encoding, so the encoding check adds no security to the
// other two; it keeps each accepted point to one encoding and names the
// fault.) Public keys are public: variable-time arithmetic is fine.
func ed25519Weakness(b []byte) weakness {
	p, err := edwards25519.NewIdentityPoint().SetBytes(b)
	if err != nil {
		return weakOffCurve
	}
	// SetBytes accepts non-canonical encodings; a canonical one re-encodes
	// to itself.
	if !bytes.Equal(p.Bytes(), b) {
		return weakNonCanonical
	}
	if edwards25519.NewIdentityPoint().MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return weakSmallOrder
	}
	q := edwards25519.NewIdentityPoint().VarTimeDoubleScalarBaseMult(minusOne, p, edwards25519.NewScalar())
	if q.Equal(edwards25519.NewIdentityPoint().Negate(p)) != 1 {
		return weakTorsion
	}
	return weakNone
}

func checkEd25519(b []byte) error {
	if w := ed25519Weakness(b); w != weakNone {
		return fmt.Errorf("%w: the Ed25519 half %s; generate the key again", ErrWeakKey, weakReason[w])
	}
	return nil
}

// ParsePublicKey parses the fixed-length encoding returned by Bytes. A key
// whose Ed25519 half is weak is refused with ErrWeakKey.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	switch {
	case len(b) == ed25519.PublicKeySize:
		return nil, ErrMissingPQ
	case len(b) != PublicKeySize:
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrMalformed, len(b), PublicKeySize)
	}
	return NewPublicKey(b[:ed25519.PublicKeySize], b[ed25519.PublicKeySize:])
}

// Bytes returns the encoding Ed25519 || ML-DSA-65. The caller must not
// modify it.
func (k *PublicKey) Bytes() []byte { return k.enc }

// Ed25519 returns the classical half. The caller must not modify it.
func (k *PublicKey) Ed25519() []byte { return k.ed }

// MLDSA returns the post-quantum half's encoding. The caller must not modify it.
func (k *PublicKey) MLDSA() []byte { return k.enc[ed25519.PublicKeySize:] }

// Fingerprint returns SHA-256 of the encoding.
func (k *PublicKey) Fingerprint() [32]byte { return k.hash }

// Equal reports whether two keys are the same.
func (k *PublicKey) Equal(o *PublicKey) bool {
	return o != nil && subtle.ConstantTimeCompare(k.enc, o.enc) == 1
}

// String returns a short, non-secret description.
func (k *PublicKey) String() string {
	return "hybrid-ed25519-mldsa65:" + hex.EncodeToString(k.hash[:8])
}

// Signature is a hybrid signature: both halves are always present.
type Signature struct {
	Ed25519 []byte
	MLDSA   []byte
}

// ParseSignature parses the fixed-length encoding returned by Bytes.
func ParseSignature(b []byte) (*Signature, error) {
	switch {
	case len(b) == ed25519.SignatureSize:
		return nil, ErrMissingPQ
	case len(b) != SignatureSize:
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(b), SignatureSize)
	}
	return &Signature{Ed25519: b[:ed25519.SignatureSize:ed25519.SignatureSize], MLDSA: b[ed25519.SignatureSize:]}, nil
}

// Bytes returns Ed25519 || ML-DSA-65.
func (s *Signature) Bytes() []byte {
	out := make([]byte, 0, len(s.Ed25519)+len(s.MLDSA))
	return append(append(out, s.Ed25519...), s.MLDSA...)
}

// Context returns the signing context for purpose: "enigm/v1/" + purpose.
// A purpose is 1–64 characters of [a-z0-9_.-/].
func Context(purpose string) (string, error) {
	if err := checkPurpose(purpose); err != nil {
		return "", err
	}
	return "enigm/v1/" + purpose, nil
}

func checkPurpose(p string) error {
	if len(p) == 0 || len(p) > 64 {
		return fmt.Errorf("%w: purpose must be 1-64 characters, got %d", ErrContext, len(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/') {
			return fmt.Errorf("%w: purpose %q has a character outside [a-z0-9_.-/]", ErrContext, p)
		}
	}
	return nil
}

// message builds M' for the given context, key hash and message.
func message(ctx string, pkHash *[32]byte, msg []byte) ([]byte, error) {
	if len(ctx) == 0 || len(ctx) > MaxContextSize {
		return nil, fmt.Errorf("%w: context must be 1-%d bytes", ErrContext, MaxContextSize)
	}
	m := make([]byte, 0, len(messagePrefix)+1+len(ctx)+32+len(msg))
	m = append(m, messagePrefix...)
	m = append(m, byte(len(ctx)))
	m = append(m, ctx...)
	m = append(m, pkHash[:]...)
	return append(m, msg...), nil
}

// Verify checks sig over msg under the signing context ctx (a full context
// such as "enigm/v1/add_device", see [Context]). Both halves must verify.
func Verify(pk *PublicKey, ctx string, msg []byte, sig *Signature) error {
	if pk == nil || sig == nil {
		return fmt.Errorf("%w: missing key or signature", ErrInvalidSignature)
	}
	if len(sig.MLDSA) == 0 {
		return ErrMissingPQ
	}
	if len(sig.Ed25519) != ed25519.SignatureSize || len(sig.MLDSA) != mldsa.MLDSA65SignatureSize {
		return fmt.Errorf("%w: signature halves have the wrong size", ErrMalformed)
	}
	m, err := message(ctx, &pk.hash, msg)
	if err != nil {
		return err
	}
	// Verify both halves regardless of the first result, so that timing
	// does not reveal which half failed.
	edOK := ed25519.Verify(pk.ed, m, sig.Ed25519)
	pqErr := mldsa.Verify(pk.pq, m, sig.MLDSA, &mldsa.Options{Context: ctx})
	if !edOK || pqErr != nil {
		return ErrInvalidSignature
	}
	return nil
}

// PrivateKey is a hybrid private key. It must be kept secret: it has no
// method that returns its seed, and its String method prints only the public
// fingerprint.
type PrivateKey struct {
	ed  ed25519.PrivateKey
	pq  *mldsa.PrivateKey
	pub *PublicKey
}

// NewPrivateKey expands a 64-byte seed (Ed25519 seed || ML-DSA-65 seed).
// The seed must be kept secret; the caller should zero its copy afterwards.
func NewPrivateKey(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrMalformed, len(seed), SeedSize)
	}
	ed := ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize])
	pq, err := mldsa.NewPrivateKey(mldsa.MLDSA65(), seed[ed25519.SeedSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-65 seed: %v", ErrMalformed, err)
	}
	pub, err := NewPublicKey(ed.Public().(ed25519.PublicKey), pq.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{ed: ed, pq: pq, pub: pub}, nil
}

// Public returns the public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Sign signs msg under the signing context ctx (see [Context]).
func (k *PrivateKey) Sign(ctx string, msg []byte) (*Signature, error) {
	m, err := message(ctx, &k.pub.hash, msg)
	if err != nil {
		return nil, err
	}
	pqSig, err := k.pq.Sign(nil, m, &mldsa.Options{Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("hybrid: ML-DSA-65 sign: %w", err)
	}
	return &Signature{Ed25519: ed25519.Sign(k.ed, m), MLDSA: pqSig}, nil
}

// SignDeterministic is Sign with a deterministic ML-DSA-65 signature (FIPS
// 204 deterministic variant; Ed25519 is deterministic anyway), so the same
// key, context and message always give the same bytes. It exists for
// reproducible test vectors; production signers use Sign, whose hedged
// ML-DSA-65 signatures resist fault and side-channel attacks better.
func (k *PrivateKey) SignDeterministic(ctx string, msg []byte) (*Signature, error) {
	m, err := message(ctx, &k.pub.hash, msg)
	if err != nil {
		return nil, err
	}
	pqSig, err := k.pq.SignDeterministic(m, &mldsa.Options{Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("hybrid: ML-DSA-65 sign: %w", err)
	}
	return &Signature{Ed25519: ed25519.Sign(k.ed, m), MLDSA: pqSig}, nil
}

// Destroy overwrites the Ed25519 key material held by k. The ML-DSA-65
// expanded key lives inside filippo.io/mldsa, which offers no zeroisation;
// dropping the last reference is all that can be done for it.
func (k *PrivateKey) Destroy() {
	clear(k.ed)
	k.pq = nil
}

// String prints only the public fingerprint.
func (k *PrivateKey) String() string { return "hybrid private key for " + k.pub.String() }

// Format prints only the public fingerprint, whatever the verb, so that no
// fmt verb (%d, %x, %#v, …) can reach the key material.
func (k PrivateKey) Format(f fmt.State, _ rune) {
	if k.pub == nil {
		io.WriteString(f, "hybrid.PrivateKey(redacted)")
		return
	}
	io.WriteString(f, k.String())
}

// Equal reports whether two signatures have identical bytes.
func (s *Signature) Equal(o *Signature) bool {
	return o != nil && bytes.Equal(s.Ed25519, o.Ed25519) && bytes.Equal(s.MLDSA, o.MLDSA)
}
