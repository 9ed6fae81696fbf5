//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// session is an open, logged-in store. One PKCS#11 session serves it; the
// mutex serializes the token calls (a PKCS#11 session runs one operation
// at a time).
type session struct {
	mu         sync.Mutex
	c          *conn // nil once closed
	destroyKey p11.ObjectHandle
	destroyPub *ecdh.PublicKey             // schemeECDH: the destroy key's public half
	keks       map[string]p11.ObjectHandle // wrapping key per label
	macs       map[string]p11.ObjectHandle // schemeCBCHMAC: HMAC key per label
	pubs       map[string]*ecdh.PublicKey  // schemeECDH: wrapping key's public half per label
	adopted    p11.ObjectHandle            // schemeECDHAdopted: the adopted private key
	adoptedPub *ecdh.PublicKey             // schemeECDHAdopted: its public half
}

// sealSession is a session on a token without binding-key mechanisms: it
// does not offer backend.BindingKeys.
type sealSession struct{ s *session }

var (
	_ backend.Session     = (*session)(nil)
	_ backend.BindingKeys = (*session)(nil)
	_ backend.Session     = sealSession{}
)

func (x sealSession) Seal(ctx context.Context, label string, secret []byte) ([]byte, error) {
	return x.s.Seal(ctx, label, secret)
}

func (x sealSession) Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	return x.s.Unseal(ctx, label, sealed)
}

func (x sealSession) Close() error { return x.s.Close() }

// acquire locks the session and returns its connection.
func (s *session) acquire(ctx context.Context) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.c == nil {
		s.mu.Unlock()
		return nil, backend.ErrClosed
	}
	return s.c, nil
}

// kek returns the wrapping key of label, creating it when create is set.
func (s *session) kek(c *conn, label string, create bool) (p11.ObjectHandle, error) {
	if h, ok := s.keks[label]; ok {
		return h, nil
	}
	tmpl := c.kekTemplate(label)
	h, err := c.findOne("wrapping key", tmpl)
	switch {
	case errors.Is(err, errNotFound) && create:
		if c.st.Scheme == schemeECDH {
			pubT, privT := c.ecPairTemplates(objectID(c.st.StoreID, roleKEK, []byte(label)), true)
			var pub *ecdh.PublicKey
			if h, pub, err = c.generateAgreementPair(pubT, privT, true); err != nil {
				return 0, err
			}
			s.pubs[label] = pub
		} else if h, err = c.generateAES(tmpl, true); err != nil {
			return 0, err
		}
	case errors.Is(err, errNotFound):
		return 0, fmt.Errorf("%w: no wrapping key for label %q on the token", backend.ErrSealedData, label)
	case err != nil:
		return 0, err
	case c.st.Scheme == schemeECDH:
		pubT, _ := c.ecPairTemplates(objectID(c.st.StoreID, roleKEK, []byte(label)), true)
		pub, err := c.agreementPub(h, pubT, true)
		if err != nil {
			return 0, err
		}
		s.pubs[label] = pub
	default:
		if err := c.checkKey(h, p11.CKK_AES, true); err != nil {
			return 0, err
		}
	}
	s.keks[label] = h
	return h, nil
}

// mac returns the HMAC key of label (schemeCBCHMAC), creating it when
// create is set.
func (s *session) mac(c *conn, label string, create bool) (p11.ObjectHandle, error) {
	if h, ok := s.macs[label]; ok {
		return h, nil
	}
	tmpl := c.macTemplate(label)
	h, err := c.findOne("MAC key", tmpl)
	switch {
	case errors.Is(err, errNotFound) && create:
		if h, err = c.generateSecret(tmpl, p11.CKK_GENERIC_SECRET, true, p11.CKA_SIGN); err != nil {
			return 0, err
		}
	case errors.Is(err, errNotFound):
		return 0, fmt.Errorf("%w: no MAC key for label %q on the token", backend.ErrSealedData, label)
	case err != nil:
		return 0, err
	default:
		if err := c.checkKey(h, p11.CKK_GENERIC_SECRET, true); err != nil {
			return 0, err
		}
	}
	s.macs[label] = h
	return h, nil
}

// Seal seals secret for label with the store's scheme (the package doc
// and docs/design/pkcs11.md have the formats). The label's token keys are
// created on first use.
func (s *session) Seal(ctx context.Context, label string, secret []byte) ([]byte, error) {
	if len(secret) > MaxSealSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", backend.ErrTooLarge, len(secret), MaxSealSize)
	}
	if len(label) > MaxLabelSize {
		return nil, fmt.Errorf("pkcs11: seal label has %d bytes, limit %d", len(label), MaxLabelSize)
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if c.st.Scheme == schemeECDHAdopted {
		return s.sealAdopted(label, secret)
	}
	k, err := s.kek(c, label, true)
	if err != nil {
		return nil, err
	}
	switch c.st.Scheme {
	case schemeCBCHMAC:
		m, err := s.mac(c, label, true)
		if err != nil {
			return nil, err
		}
		iv1, iv2 := make([]byte, cbcBlock), make([]byte, cbcBlock)
		rand.Read(iv1)
		rand.Read(iv2)
		return sealCBC(c.cbcOps(s.destroyKey, k, m), c.st.StoreID, label, secret, iv1, iv2)
	case schemeECDH:
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, ecdhNonceSize)
		rand.Read(nonce)
		return sealECDH(c.st.StoreID, label, secret, eph, s.pubs[label], s.destroyPub, nonce)
	}
	p0 := make([]byte, 0, len(secret)+checkSize)
	p0 = append(append(p0, secret...), checkValue(c.st.StoreID, label, secret)...)
	defer clear(p0)
	iv1, c1, err := c.encrypt(s.destroyKey, sealAD("destroy", c.st.StoreID, label), p0)
	if err != nil {
		return nil, err
	}
	p1 := append(iv1, c1...)
	iv2, c2, err := c.encrypt(k, sealAD("kek", c.st.StoreID, label), p1)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+ivSize+len(c2))
	out = append(out, sealVersion)
	out = append(out, iv2...)
	return append(out, c2...), nil
}

// Unseal decrypts on the token and checks every length, the
// authentication of the scheme and the software check value: wrong data
// or a wrong answer from the token fail with [backend.ErrSealedData].
func (s *session) Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	if len(label) > MaxLabelSize {
		return nil, fmt.Errorf("%w: seal label longer than %d bytes", backend.ErrSealedData, MaxLabelSize)
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	switch c.st.Scheme {
	case schemeECDHAdopted:
		return s.unsealAdopted(label, sealed)
	case schemeCBCHMAC:
		if err := parseSealedCBC(sealed); err != nil {
			return nil, err
		}
		k, err := s.kek(c, label, false)
		if err != nil {
			return nil, err
		}
		m, err := s.mac(c, label, false)
		if err != nil {
			return nil, err
		}
		return openCBC(c.cbcOps(s.destroyKey, k, m), c.st.StoreID, label, sealed)
	case schemeECDH:
		if _, _, _, err := parseSealedECDH(sealed); err != nil {
			return nil, err
		}
		k, err := s.kek(c, label, false)
		if err != nil {
			return nil, err
		}
		return openECDH(c.st.StoreID, label, sealed, s.pubs[label], s.destroyPub, func(destroy bool, e []byte) ([]byte, error) {
			if destroy {
				return c.ecdh(s.destroyKey, e)
			}
			return c.ecdh(k, e)
		})
	}
	iv2, c2, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	k, err := s.kek(c, label, false)
	if err != nil {
		return nil, err
	}
	p1, err := c.decrypt(k, iv2, sealAD("kek", c.st.StoreID, label), c2)
	if err != nil {
		return nil, err
	}
	defer clear(p1)
	if len(p1) < innerMin { // excluded by parseSealed and decrypt's length check
		return nil, fmt.Errorf("%w: inner layer too short", backend.ErrSealedData)
	}
	p0, err := c.decrypt(s.destroyKey, p1[:ivSize], sealAD("destroy", c.st.StoreID, label), p1[ivSize:])
	if err != nil {
		return nil, err
	}
	defer clear(p0)
	n := len(p0) - checkSize
	if subtle.ConstantTimeCompare(p0[n:], checkValue(c.st.StoreID, label, p0[:n])) != 1 {
		return nil, fmt.Errorf("%w: %w: the token's plaintext fails the check value", backend.ErrSealedData, ErrTokenFault)
	}
	return bytes.Clone(p0[:n]), nil
}

// Close logs out (when it is this process's last session on the token) and
// closes the PKCS#11 session. Signers from this session stop working.
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		s.c.close()
		s.c = nil
		clear(s.keks)
		clear(s.macs)
		clear(s.pubs)
	}
	return nil
}
