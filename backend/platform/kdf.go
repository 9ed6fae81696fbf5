package platform

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
)

// kdfParams are Argon2id parameters, bounded on read like the software
// backend's (soft.MaxTime, soft.MaxMemoryKiB, soft.MaxThreads,
// soft.MaxWork) so that a tampered state cannot make Open consume unbounded
// memory or time.
type kdfParams soft.Params

func (p kdfParams) check() error {
	switch {
	case p.Time < 1 || p.Time > soft.MaxTime:
		return fmt.Errorf("%w: Argon2id time %d outside [1, %d]", backend.ErrState, p.Time, soft.MaxTime)
	case p.Threads < 1 || p.Threads > soft.MaxThreads:
		return fmt.Errorf("%w: Argon2id threads %d outside [1, %d]", backend.ErrState, p.Threads, soft.MaxThreads)
	case p.MemoryKiB < soft.MinMemoryKiB*uint32(p.Threads) || p.MemoryKiB > soft.MaxMemoryKiB:
		return fmt.Errorf("%w: Argon2id memory %d KiB outside [%d, %d]", backend.ErrState, p.MemoryKiB, soft.MinMemoryKiB*uint32(p.Threads), soft.MaxMemoryKiB)
	case uint64(p.Time)*uint64(p.MemoryKiB) > soft.MaxWork:
		return fmt.Errorf("%w: Argon2id work %d×%d KiB exceeds %d", backend.ErrState, p.Time, p.MemoryKiB, soft.MaxWork)
	}
	return nil
}

// secretKeys are the two keys derived from the unlock secret. They must be
// kept secret.
type secretKeys struct {
	check []byte // inner layer of the check value
	seal  []byte // inner layer of sealed data
}

func (k *secretKeys) clear() {
	clear(k.check)
	clear(k.seal)
	k.check, k.seal = nil, nil
}

// deriveKeys stretches the secret with Argon2id under the state's salt and
// parameters, then separates the check and seal keys with HKDF-SHA256.
func deriveKeys(secret []byte, s *state) (*secretKeys, error) {
	root := argon2.IDKey(secret, s.Salt, s.Time, s.MemoryKiB, s.Threads, 32)
	defer clear(root)
	check, err := hkdf.Key(sha256.New, root, s.StoreID, "enigm/v1/platform/check-key", 32)
	if err != nil {
		return nil, err
	}
	seal, err := hkdf.Key(sha256.New, root, s.StoreID, "enigm/v1/platform/seal-key", 32)
	if err != nil {
		clear(check)
		return nil, err
	}
	return &secretKeys{check: check, seal: seal}, nil
}
