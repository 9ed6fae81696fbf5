//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// signer is a binding key on the token. It holds no key material.
type signer struct {
	s    *session
	priv p11.ObjectHandle
	pub  *ecdsa.PublicKey
}

var _ crypto.Signer = (*signer)(nil)

// CreateBindingKey generates an EC P-256 key pair on the token (private
// half sensitive, non-extractable, sign-only), checks it with one signature
// and returns its blob.
func (s *session) CreateBindingKey(ctx context.Context) ([]byte, crypto.Signer, error) {
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	keyID := make([]byte, keyIDSize)
	rand.Read(keyID)
	pubT, privT := c.ecTemplates(keyID)
	privH, pubH, pub, err := c.generatePair(pubT, privT, true, p11.CKA_SIGN)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	s.mu.Unlock()

	k := &signer{s: s, priv: privH, pub: pub}
	d := sha256.Sum256([]byte("enigm/v1/pkcs11/binding-key-check"))
	if _, err := k.Sign(nil, d[:], crypto.SHA256); err != nil {
		s.destroyPair(privH, pubH)
		return nil, nil, fmt.Errorf("pkcs11: new binding key fails its first signature: %w", err)
	}
	blob, err := wire.Marshal(bindingBlob{Version: blobVersion, StoreID: c.st.StoreID, KeyID: keyID, Public: encodePoint(pub)})
	if err != nil {
		s.destroyPair(privH, pubH)
		return nil, nil, err
	}
	return blob, k, nil
}

func (s *session) destroyPair(hs ...p11.ObjectHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		for _, h := range hs {
			s.c.b.tok.DestroyObject(s.c.sh, h)
		}
	}
}

// decodePoint reads CKA_EC_POINT: a DER OCTET STRING holding the
// uncompressed point, or (some tokens) the bare point.
func decodePoint(v []byte) (*ecdsa.PublicKey, error) {
	if len(v) == pointSize+2 && v[0] == 0x04 && v[1] == pointSize {
		v = v[2:]
	}
	if len(v) != pointSize {
		return nil, fmt.Errorf("%w: CKA_EC_POINT has %d bytes", ErrTokenFault, len(v))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), v)
	if err != nil {
		return nil, fmt.Errorf("%w: CKA_EC_POINT: %v", ErrTokenFault, err)
	}
	return pub, nil
}

func encodePoint(pub *ecdsa.PublicKey) []byte {
	b, _ := pub.Bytes() // a parsed P-256 key always encodes
	return b
}

// LoadBindingKey finds a binding key of this store on the token and checks
// that its public half is the one in the blob.
func (s *session) LoadBindingKey(ctx context.Context, blob []byte) (crypto.Signer, error) {
	bb, pub, err := parseBindingBlob(blob)
	if err != nil {
		return nil, err
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if !bytes.Equal(bb.StoreID, c.st.StoreID) {
		return nil, fmt.Errorf("%w: the binding key blob belongs to another store", backend.ErrState)
	}
	pubT, privT := c.ecTemplates(bb.KeyID)
	privH, err := c.findStored("binding key", privT, "binding key not on the token (destroyed?)")
	if err != nil {
		return nil, err
	}
	tokPub, err := c.storedPublic(privH, "binding public key", pubT, "binding public key not on the token (destroyed?)", true)
	if err != nil {
		return nil, err
	}
	if !tokPub.Equal(pub) {
		return nil, fmt.Errorf("%w: the blob's public key differs from the token's", backend.ErrState)
	}
	return &signer{s: s, priv: privH, pub: pub}, nil
}

// Public returns the *ecdsa.PublicKey.
func (k *signer) Public() crypto.PublicKey { return k.pub }

// Sign signs a SHA-256 digest on the token with CKM_ECDSA and returns an
// ASN.1 DER signature, verified against the public key first. rand is not
// used: the token draws the nonce.
func (k *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("pkcs11: the binding key signs 32-byte SHA-256 digests only")
	}
	c, err := k.s.acquire(context.Background())
	if err != nil {
		return nil, err
	}
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}
	err = c.b.tok.SignInit(c.sh, mech, k.priv)
	var raw []byte
	if err == nil {
		raw, err = c.b.tok.Sign(c.sh, digest)
	}
	k.s.mu.Unlock()
	if err != nil {
		return nil, tokenErr("C_Sign (ECDSA)", err)
	}
	if len(raw) != 64 {
		return nil, fmt.Errorf("%w: ECDSA signature has %d bytes, want 64", ErrTokenFault, len(raw))
	}
	sig, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:]),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFault, err)
	}
	if !ecdsa.VerifyASN1(k.pub, digest, sig) {
		return nil, fmt.Errorf("%w: the token's ECDSA signature does not verify under the binding public key", ErrTokenFault)
	}
	return sig, nil
}
