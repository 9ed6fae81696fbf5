package platform

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/internal/wire"
)

func parsePoint(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) != pointSize {
		return nil, fmt.Errorf("P-256 point of %d bytes", len(b))
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
}

// bindingChallenge is the attestation challenge a binding key is generated
// with: it ties the platform's attestation to this store and key id.
// Freshness comes from a signature over the verifier's nonce (see Attest).
func bindingChallenge(storeID, keyID []byte) []byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/platform/binding-attestation\x00"))
	h.Write(storeID)
	h.Write(keyID)
	return h.Sum(nil)
}

// CreateBindingKey generates a P-256 signing key in the hardware with the
// store's access control, checks it with one signature and returns its
// blob.
func (s bindingSession) CreateBindingKey(ctx context.Context) ([]byte, crypto.Signer, error) {
	s.mu.RLock()
	closed := s.keys == nil
	s.mu.RUnlock()
	if closed {
		return nil, nil, backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	keyID := make([]byte, keyIDSize)
	rand.Read(keyID)
	alias := bindingAlias(s.st.StoreID, keyID)
	spec := s.b.spec(alias, bridge.AlgP256)
	spec.Sign = true
	if len(s.b.caps.Attestation) > 0 {
		spec.AttestationChallenge = bindingChallenge(s.st.StoreID, keyID)
	}
	k, err := s.b.br.GenerateKey(spec)
	if err != nil {
		return nil, nil, bridgeErr("generating the binding key", err)
	}
	fail := func(err error) ([]byte, crypto.Signer, error) {
		s.b.br.DeleteKey(alias)
		return nil, nil, err
	}
	if err := s.b.checkKey(k, alias, bridge.AlgP256); err != nil {
		return fail(err)
	}
	pub, _ := parsePoint(k.PublicKey) // checked by checkKey
	sg := &signer{s: s.session, alias: alias, pub: pub}
	d := sha256.Sum256([]byte("enigm/v1/platform/binding-key-check"))
	if _, err := sg.Sign(nil, d[:], crypto.SHA256); err != nil {
		return fail(fmt.Errorf("platform: the new binding key fails its first signature: %w", err))
	}
	blob, err := wire.Marshal(bindingBlob{Version: blobVersion, StoreID: s.st.StoreID, KeyID: keyID, Public: k.PublicKey})
	if err != nil {
		return fail(err)
	}
	return blob, sg, nil
}

// LoadBindingKey finds a binding key of this store in the hardware and
// checks that its public key is the blob's.
func (s bindingSession) LoadBindingKey(ctx context.Context, blob []byte) (crypto.Signer, error) {
	bb, err := parseBindingBlob(blob)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(bb.StoreID, s.st.StoreID) {
		return nil, fmt.Errorf("%w: the binding key blob belongs to another store", backend.ErrState)
	}
	s.mu.RLock()
	closed := s.keys == nil
	s.mu.RUnlock()
	if closed {
		return nil, backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	alias := bindingAlias(bb.StoreID, bb.KeyID)
	k, err := s.b.br.KeyInfo(alias)
	if err != nil {
		return nil, bridgeErr("finding the binding key", err)
	}
	if err := s.b.checkKey(k, alias, bridge.AlgP256); err != nil {
		return nil, err
	}
	if !bytes.Equal(k.PublicKey, bb.Public) {
		return nil, fmt.Errorf("%w: the blob's public key differs from the hardware key's", backend.ErrState)
	}
	pub, _ := parsePoint(bb.Public)
	return &signer{s: s.session, alias: alias, pub: pub}, nil
}

// signer signs in the hardware through its session.
type signer struct {
	s     *session
	alias string
	pub   *ecdsa.PublicKey
}

var _ crypto.Signer = (*signer)(nil)

// Public returns the *ecdsa.PublicKey.
func (k *signer) Public() crypto.PublicKey { return k.pub }

// Sign signs a 32-byte SHA-256 digest in the hardware and verifies the
// signature before returning it. rand is unused: the hardware draws the
// nonce. It returns backend.ErrClosed after the session's Close.
func (k *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("platform: the binding key signs 32-byte SHA-256 digests only")
	}
	k.s.mu.RLock()
	defer k.s.mu.RUnlock()
	if k.s.keys == nil {
		return nil, backend.ErrClosed
	}
	sig, err := k.s.b.br.Sign(k.alias, digest)
	if err != nil {
		return nil, bridgeErr("signing with the binding key", err)
	}
	if !ecdsa.VerifyASN1(k.pub, digest, sig) {
		return nil, fmt.Errorf("%w: the hardware's ECDSA signature does not verify under the binding public key", backend.ErrHardwareFault)
	}
	return sig, nil
}

// Attest returns evidence that the binding key lives in the hardware
// (the platform's attestation, made when the key was generated) and that
// the hardware holds it now (a signature by the key over nonce). See
// VerifyEvidence.
func (s attestingSession) Attest(ctx context.Context, bindingBlob, nonce []byte) (backend.Evidence, error) {
	if len(nonce) < MinNonce || len(nonce) > MaxNonce {
		return backend.Evidence{}, fmt.Errorf("platform: attestation nonce of %d bytes; %d to %d allowed", len(nonce), MinNonce, MaxNonce)
	}
	key, err := s.LoadBindingKey(ctx, bindingBlob)
	if err != nil {
		return backend.Evidence{}, err
	}
	sg := key.(*signer)
	chain, err := s.b.br.Attest(sg.alias)
	if err != nil {
		return backend.Evidence{}, bridgeErr("attesting the binding key", err)
	}
	d := nonceDigest(nonce)
	sig, err := sg.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		return backend.Evidence{}, err
	}
	bb, _ := parseBindingBlob(bindingBlob) // parsed by LoadBindingKey
	ev, err := encodeEvidence(chain, sig)
	if err != nil {
		return backend.Evidence{}, err
	}
	// Check what the hardware said before handing it on: the leaf must
	// certify this key over the challenge it was generated with. The
	// chain's root is the verifier's business.
	if _, err := checkEvidence(ev, nonce, bindingChallenge(bb.StoreID, bb.KeyID)); err != nil {
		return backend.Evidence{}, fmt.Errorf("%w: %v", backend.ErrHardwareFault, err)
	}
	return ev, nil
}
