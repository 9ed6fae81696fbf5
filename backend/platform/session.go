package platform

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/enigm/enigm/backend"
)

// session is an opened store: the secret's derived keys in memory, the
// store key in the hardware.
type session struct {
	b  *Backend
	st *state

	mu   sync.RWMutex
	keys *secretKeys // nil once closed
}

// bindingSession adds binding keys (the hardware signs).
type bindingSession struct{ *session }

// attestingSession adds attestation (the hardware attests its keys).
type attestingSession struct{ *bindingSession }

var (
	_ backend.Session     = (*session)(nil)
	_ backend.BindingKeys = bindingSession{}
	_ backend.Attester    = attestingSession{}
)

// public returns the session with exactly the optional interfaces the
// hardware supports.
func (s *session) public() backend.Session {
	if !s.b.caps.Holds(backend.AlgP256) {
		return s
	}
	bs := bindingSession{s}
	if len(s.b.caps.Attestation) == 0 {
		return bs
	}
	return attestingSession{&bs}
}

// errInner reports that the software (secret) layer did not authenticate.
var errInner = errors.New("platform: inner layer does not authenticate")

func gcm(key []byte) cipher.AEAD {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		panic(err)
	}
	return a
}

// Seal protects secret for label: version || outer(inner(secret)).
func (s *session) Seal(ctx context.Context, label string, secret []byte) ([]byte, error) {
	if len(secret) == 0 || len(secret) > MaxSealSize {
		return nil, fmt.Errorf("%w: %d bytes; 1 to %d allowed", backend.ErrTooLarge, len(secret), MaxSealSize)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.keys == nil {
		return nil, backend.ErrClosed
	}
	return s.seal(ctx, label, secret, nil)
}

// Unseal reverses Seal.
func (s *session) Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.keys == nil {
		return nil, backend.ErrClosed
	}
	pt, err := s.unseal(ctx, label, sealed, nil)
	if errors.Is(err, errInner) {
		// The hardware authenticated the outer layer, so the inner one was
		// made by this store with this secret: a wrong inner layer is a
		// wrong result from the hardware.
		return nil, fmt.Errorf("%w: %w: the hardware returned plaintext that does not authenticate", backend.ErrSealedData, backend.ErrHardwareFault)
	}
	return pt, err
}

// Close forgets the secret's keys.
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys != nil {
		s.keys.clear()
		s.keys = nil
	}
	return nil
}

// innerKey is the check key for the check value (extra != nil), the seal
// key otherwise. s.mu is held.
func (s *session) innerKey(extra []byte) []byte {
	if extra != nil {
		return s.keys.check
	}
	return s.keys.seal
}

// seal makes version (1) || outer. extra (the state commitment, for the
// check value) is appended to the outer additional data.
func (s *session) seal(ctx context.Context, label string, secret, extra []byte) ([]byte, error) {
	ad := innerAD(s.st.StoreID, label)
	inner := make([]byte, nonceSize, nonceSize+len(secret)+tagSize)
	rand.Read(inner)
	inner = gcm(s.innerKey(extra)).Seal(inner, inner, secret, ad)
	oad := append(outerAD(s.st.StoreID, label), extra...)
	out := []byte{sealVersion}
	switch s.st.Scheme {
	case schemeAES:
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ct, err := s.b.br.Encrypt(storeAlias(s.st.StoreID), inner, oad)
		if err != nil {
			return nil, bridgeErr("sealing", err)
		}
		if len(ct) != nonceSize+len(inner)+tagSize {
			return nil, fmt.Errorf("%w: AES-GCM output of %d bytes for %d bytes of input", backend.ErrHardwareFault, len(ct), len(inner))
		}
		return append(out, ct...), nil
	case schemeECIES:
		peer, err := ecdh.P256().NewPublicKey(s.st.StorePub)
		if err != nil {
			return nil, fmt.Errorf("%w: store public key: %v", backend.ErrState, err)
		}
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		z, err := eph.ECDH(peer)
		if err != nil {
			return nil, err
		}
		key, err := eciesKey(z, eph.PublicKey().Bytes(), s.st.StorePub)
		clear(z)
		if err != nil {
			return nil, err
		}
		defer clear(key)
		out = append(out, eph.PublicKey().Bytes()...)
		nonce := make([]byte, nonceSize)
		rand.Read(nonce)
		out = append(out, nonce...)
		return gcm(key).Seal(out, nonce, inner, oad), nil
	}
	return nil, fmt.Errorf("%w: unknown scheme %d", backend.ErrState, s.st.Scheme)
}

// eciesKey derives the AES-256 key of one ECIES seal from the ECDH secret,
// bound to both public keys.
func eciesKey(z, ephPub, storePub []byte) ([]byte, error) {
	salt := append(append([]byte(nil), ephPub...), storePub...)
	return hkdf.Key(sha256.New, z, salt, "enigm/v1/platform/ecies", 32)
}

// unseal reverses seal. An inner-layer failure is errInner.
func (s *session) unseal(ctx context.Context, label string, sealed, extra []byte) ([]byte, error) {
	oad := append(outerAD(s.st.StoreID, label), extra...)
	var inner []byte
	switch {
	case len(sealed) < 1 || sealed[0] != sealVersion:
		return nil, fmt.Errorf("%w: unknown sealed-data version", backend.ErrSealedData)
	case s.st.Scheme == schemeAES:
		ct := sealed[1:]
		if len(ct) < nonceSize+nonceSize+tagSize+tagSize {
			return nil, fmt.Errorf("%w: sealed data too short", backend.ErrSealedData)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pt, err := s.b.br.Decrypt(storeAlias(s.st.StoreID), ct, oad)
		if err != nil {
			return nil, bridgeErr("unsealing", err)
		}
		if len(pt) != len(ct)-nonceSize-tagSize {
			clear(pt)
			return nil, fmt.Errorf("%w: %w: AES-GCM returned %d bytes for %d bytes of input", backend.ErrSealedData, backend.ErrHardwareFault, len(pt), len(ct))
		}
		inner = pt
	case s.st.Scheme == schemeECIES:
		body := sealed[1:]
		if len(body) < pointSize+nonceSize+nonceSize+tagSize+tagSize {
			return nil, fmt.Errorf("%w: sealed data too short", backend.ErrSealedData)
		}
		ephPub := body[:pointSize]
		if _, err := ecdh.P256().NewPublicKey(ephPub); err != nil {
			return nil, fmt.Errorf("%w: ephemeral public key: %v", backend.ErrSealedData, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		z, err := s.b.br.Agree(storeAlias(s.st.StoreID), ephPub)
		if err != nil {
			return nil, bridgeErr("unsealing", err)
		}
		if len(z) != 32 {
			clear(z)
			return nil, fmt.Errorf("%w: ECDH secret of %d bytes", backend.ErrHardwareFault, len(z))
		}
		key, err := eciesKey(z, ephPub, s.st.StorePub)
		clear(z)
		if err != nil {
			return nil, err
		}
		nonce := body[pointSize : pointSize+nonceSize]
		inner, err = gcm(key).Open(nil, nonce, body[pointSize+nonceSize:], oad)
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("%w: does not authenticate (tampered, another label, or another store)", backend.ErrSealedData)
		}
	default:
		return nil, fmt.Errorf("%w: unknown scheme %d", backend.ErrState, s.st.Scheme)
	}
	defer clear(inner)
	pt, err := gcm(s.innerKey(extra)).Open(nil, inner[:nonceSize], inner[nonceSize:], innerAD(s.st.StoreID, label))
	if err != nil {
		return nil, errInner
	}
	return pt, nil
}
