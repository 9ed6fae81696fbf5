// Package soft is the software backend: the keystore's wrapping keys are
// sealed with AES-256-GCM under a key derived from the user's passphrase with
// Argon2id (RFC 9106, second recommended option: t=3, m=64 MiB, p=4, 16-byte
// salt).
//
// It enforces nothing in hardware: anyone who copies the store can mount an
// offline guessing attack, slowed only by Argon2id. Its protection level is
// "software". Argon2id parameters read back from the state are bounded
// (see [MaxMemoryKiB], [MaxTime], [MaxThreads]) so that a tampered state
// cannot make unlock consume unbounded memory or time.
package soft

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// Params are Argon2id parameters.
type Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// Recommended returns RFC 9106's second recommended option.
func Recommended() Params { return Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4} }

// Bounds enforced on parameters read from a state.
const (
	MaxTime      = 10
	MaxMemoryKiB = 1 << 20 // 1 GiB
	MaxThreads   = 16
	// MaxWork bounds Time × MemoryKiB: four times the recommended cost.
	MaxWork = 4 * 3 * 64 * 1024
	// MinMemoryKiB is Argon2's own minimum for one lane.
	MinMemoryKiB = 8
	saltSize     = 16
)

func (p Params) check() error {
	switch {
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: Argon2id time %d outside [1, %d]", backend.ErrState, p.Time, MaxTime)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: Argon2id threads %d outside [1, %d]", backend.ErrState, p.Threads, MaxThreads)
	case p.MemoryKiB < MinMemoryKiB*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("%w: Argon2id memory %d KiB outside [%d, %d]", backend.ErrState, p.MemoryKiB, MinMemoryKiB*uint32(p.Threads), MaxMemoryKiB)
	case uint64(p.Time)*uint64(p.MemoryKiB) > MaxWork:
		return fmt.Errorf("%w: Argon2id work %d×%d KiB exceeds %d", backend.ErrState, p.Time, p.MemoryKiB, MaxWork)
	}
	return nil
}

// Options configure the backend.
type Options struct {
	// Params for new stores; zero means Recommended. Only tests should set
	// weaker parameters.
	Params Params
}

// Backend is the software backend.
type Backend struct{ params Params }

var _ backend.Backend = (*Backend)(nil)

// New returns a software backend.
func New(opts Options) (*Backend, error) {
	p := opts.Params
	if p == (Params{}) {
		p = Recommended()
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &Backend{params: p}, nil
}

// Capabilities reports a software backend: no resident keys, no hardware gates.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.Capabilities{Name: "soft", Level: backend.LevelSoftware, MaxSealSize: MaxSealSize}
}

// MaxSealSize is the largest secret Seal accepts.
const MaxSealSize = 4096

// state is the persisted, non-secret state. Its encoding is golden-tested.
type state struct {
	Version   uint8  `cbor:"1,keyasint"`
	KDF       uint8  `cbor:"2,keyasint"` // 1 = Argon2id v1.3
	Time      uint32 `cbor:"3,keyasint"`
	MemoryKiB uint32 `cbor:"4,keyasint"`
	Threads   uint8  `cbor:"5,keyasint"`
	Salt      []byte `cbor:"6,keyasint"`
	// Check is nonce || AES-256-GCM(checkKey, "", ad = params): it tells a
	// wrong passphrase apart from corrupt sealed data.
	Check []byte `cbor:"7,keyasint"`
}

const (
	stateVersion = 1
	kdfArgon2id  = 1
	maxStateSize = 256
	sealVersion  = 1
	nonceSize    = 12
	tagSize      = 16
)

func (s *state) params() Params {
	return Params{Time: s.Time, MemoryKiB: s.MemoryKiB, Threads: s.Threads}
}

func (s *state) checkAD() []byte {
	ad, _ := wire.Marshal(state{Version: s.Version, KDF: s.KDF, Time: s.Time, MemoryKiB: s.MemoryKiB, Threads: s.Threads, Salt: s.Salt})
	return append([]byte("enigm/v1/soft/check\x00"), ad...)
}

func parseState(b []byte) (*state, error) {
	var s state
	if err := wire.Unmarshal(b, &s, maxStateSize); err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrState, err)
	}
	if s.Version != stateVersion || s.KDF != kdfArgon2id {
		return nil, fmt.Errorf("%w: unknown soft state version %d / KDF %d", backend.ErrState, s.Version, s.KDF)
	}
	if len(s.Salt) != saltSize || len(s.Check) != nonceSize+tagSize {
		return nil, fmt.Errorf("%w: salt or check value has the wrong size", backend.ErrState)
	}
	if err := s.params().check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// keys derives the check and seal keys from the passphrase.
func deriveKeys(secret []byte, s *state) (check, seal cipher.AEAD, err error) {
	p := s.params()
	root := argon2.IDKey(secret, s.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(root)
	mk := func(label string) (cipher.AEAD, error) {
		k, err := hkdf.Key(sha256.New, root, s.Salt, label, 32)
		if err != nil {
			return nil, err
		}
		defer clear(k)
		blk, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(blk)
	}
	if check, err = mk("enigm/v1/soft/check-key"); err != nil {
		return nil, nil, err
	}
	if seal, err = mk("enigm/v1/soft/seal-key"); err != nil {
		return nil, nil, err
	}
	return check, seal, nil
}

// Provision derives a key from secret under a fresh salt.
func (b *Backend) Provision(_ context.Context, secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("soft: the passphrase must not be empty")
	}
	s := &state{Version: stateVersion, KDF: kdfArgon2id, Time: b.params.Time, MemoryKiB: b.params.MemoryKiB, Threads: b.params.Threads, Salt: make([]byte, saltSize)}
	rand.Read(s.Salt)
	check, _, err := deriveKeys(secret, s)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	s.Check = check.Seal(nonce, nonce, nil, s.checkAD())
	return wire.Marshal(s)
}

// Open derives the key from secret and checks it.
func (b *Backend) Open(_ context.Context, st, secret []byte) (backend.Session, error) {
	s, err := parseState(st)
	if err != nil {
		return nil, err
	}
	check, seal, err := deriveKeys(secret, s)
	if err != nil {
		return nil, err
	}
	if _, err := check.Open(nil, s.Check[:nonceSize], s.Check[nonceSize:], s.checkAD()); err != nil {
		return nil, backend.ErrBadSecret
	}
	return &session{aead: seal}, nil
}

// Destroy has nothing to destroy: the software backend keeps no state outside
// the keystore, which deletes its own copies on revocation.
func (b *Backend) Destroy(context.Context, []byte) error { return nil }

type session struct {
	mu   sync.RWMutex
	aead cipher.AEAD // nil once closed
}

func sealAD(label string) []byte { return append([]byte("enigm/v1/soft/seal\x00"), label...) }

func (s *session) get() (cipher.AEAD, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.aead == nil {
		return nil, backend.ErrClosed
	}
	return s.aead, nil
}

// Seal encrypts secret: version (1) || nonce (12) || AES-256-GCM(secret).
func (s *session) Seal(_ context.Context, label string, secret []byte) ([]byte, error) {
	aead, err := s.get()
	if err != nil {
		return nil, err
	}
	if len(secret) > MaxSealSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", backend.ErrTooLarge, len(secret), MaxSealSize)
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(secret)+tagSize)
	out[0] = sealVersion
	rand.Read(out[1:])
	return aead.Seal(out, out[1:], secret, sealAD(label)), nil
}

// Unseal reverses Seal.
func (s *session) Unseal(_ context.Context, label string, sealed []byte) ([]byte, error) {
	aead, err := s.get()
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+nonceSize+tagSize || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: malformed sealed data", backend.ErrSealedData)
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], sealAD(label))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", backend.ErrSealedData)
	}
	return pt, nil
}

func (s *session) Close() error {
	s.mu.Lock()
	s.aead = nil
	s.mu.Unlock()
	return nil
}
