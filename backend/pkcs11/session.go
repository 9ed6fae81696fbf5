//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
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
	keks       map[string]p11.ObjectHandle // wrapping key per label
}

var (
	_ backend.Session     = (*session)(nil)
	_ backend.BindingKeys = (*session)(nil)
)

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
		if h, err = c.generateAES(tmpl, true); err != nil {
			return 0, err
		}
	case errors.Is(err, errNotFound):
		return 0, fmt.Errorf("%w: no wrapping key for label %q on the token", backend.ErrSealedData, label)
	case err != nil:
		return 0, err
	default:
		if err := c.checkKey(h, p11.CKK_AES, true); err != nil {
			return 0, err
		}
	}
	s.keks[label] = h
	return h, nil
}

// Seal encrypts secret on the token under the destroy key, then under the
// label's wrapping key (created on first use). See the package doc for the
// format.
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
	k, err := s.kek(c, label, true)
	if err != nil {
		return nil, err
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

// Unseal decrypts on the token, both layers, and checks every length and
// the software check value: wrong data or a wrong answer from the token
// fail with [backend.ErrSealedData].
func (s *session) Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	iv2, c2, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	if len(label) > MaxLabelSize {
		return nil, fmt.Errorf("%w: seal label longer than %d bytes", backend.ErrSealedData, MaxLabelSize)
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
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
	}
	return nil
}
