package tpm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
)

// session is an unlocked store: a TPM connection and the auth values
// derived from the unlock secret. One mutex serializes its TPM commands.
type session struct {
	b   *Backend
	pol pcrPolicy
	key *storeKey

	mu sync.Mutex
	t  transport.TPMCloser // nil once closed
	// sealAuth and bindAuth are derived from the unlock secret and must
	// be kept secret; they are zeroed by Close.
	sealAuth []byte
	bindAuth []byte
}

var (
	_ backend.Session     = (*session)(nil)
	_ backend.BindingKeys = (*session)(nil)
	_ backend.Attester    = (*session)(nil)
)

// lock takes the session for one operation.
func (s *session) lock(ctx context.Context) (transport.TPM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.t == nil {
		s.mu.Unlock()
		return nil, backend.ErrClosed
	}
	return s.t, nil
}

// Seal creates a sealed-data object holding secret under the store key,
// whose policy requires the unlock secret (and the boot state) and is bound
// to label. The result is the object's public and private areas.
func (s *session) Seal(ctx context.Context, label string, secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		// A TPM sealed-data object needs data (or TPM-generated data).
		return nil, errors.New("tpm: nothing to seal: the secret is empty")
	}
	if len(secret) > MaxSealSize {
		return nil, fmt.Errorf("%w: %d bytes, the TPM seals at most %d", backend.ErrTooLarge, len(secret), MaxSealSize)
	}
	t, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	obj, err := createSealed(t, s.key, s.pol, labelBind(label), s.sealAuth, secret)
	if err != nil {
		return nil, err
	}
	return format.MarshalObject(obj)
}

// Unseal recovers a secret sealed for label under this store.
func (s *session) Unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	obj, err := format.ParseObject(sealed, format.KindSealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrSealedData, err)
	}
	bind := labelBind(label)
	if _, err := matchTemplate(obj.Public, sealedTemplate(sealedPolicy(s.pol, bind))); err != nil {
		return nil, fmt.Errorf("%w: sealed for another label or store, or altered: %v", backend.ErrSealedData, err)
	}
	t, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return unsealObject(t, s.key, s.pol, bind, s.sealAuth, obj, backend.ErrSealedData)
}

// Close zeroes the derived auth values and closes the TPM connection.
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t == nil {
		return nil
	}
	clear(s.sealAuth)
	clear(s.bindAuth)
	err := s.t.Close()
	s.t = nil
	return err
}
