package keystore

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hpke"
	"fmt"
	"sync"
	"time"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// liveKey is a key's in-memory state: lifecycle, policy and, while the store
// is unlocked and the key has been used, its unwrapped material.
type liveKey struct {
	s       *Store
	id      KeyID
	class   Class
	alg     Algorithm
	expires time.Time

	mu       sync.RWMutex
	life     lifecycle.Key
	base     policy.Requirements // the record's own
	req      policy.Requirements // base tightened by the organisation overlay
	pub      []byte
	resident []byte
	loaded   bool
	dead     bool // material destroyed for good
	pred     *KeyID
	succ     *KeyID

	hyb    *hybrid.PrivateKey
	ed     ed25519.PrivateKey
	mldsa  *mldsa.PrivateKey
	kem    hpke.PrivateKey
	aes    []byte
	signer crypto.Signer
}

// setMaterial expands seed material into usable keys. The caller keeps
// ownership of m (and clears it).
func (lk *liveKey) setMaterial(m []byte) error {
	switch lk.alg {
	case AlgHybrid:
		k, err := hybrid.NewPrivateKey(m)
		if err != nil {
			return err
		}
		lk.hyb, lk.pub = k, append([]byte(nil), k.Public().Bytes()...)
	case AlgEd25519, AlgCheckpointEd25519:
		lk.ed = ed25519.NewKeyFromSeed(m)
		lk.pub = append([]byte(nil), lk.ed.Public().(ed25519.PublicKey)...)
	case AlgCheckpointMLDSA44:
		k, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), m)
		if err != nil {
			return err
		}
		lk.mldsa, lk.pub = k, k.PublicKey().Bytes()
	case AlgXWing:
		k, err := hpke.MLKEM768X25519().NewPrivateKey(m)
		if err != nil {
			return err
		}
		lk.kem, lk.pub = k, k.PublicKey().Bytes()
	case AlgAES256GCM:
		lk.aes = append([]byte(nil), m...)
	default:
		return fmt.Errorf("%w: %v has no software material", ErrUnsupported, lk.alg)
	}
	lk.loaded = true
	return nil
}

// destroyLocked forgets the material (lk.mu held).
func (lk *liveKey) destroyLocked() {
	if lk.hyb != nil {
		lk.hyb.Destroy()
		lk.hyb = nil
	}
	clear(lk.ed)
	lk.ed = nil
	lk.mldsa = nil // filippo.io/mldsa offers no zeroisation; dropping the reference is all we can do
	lk.kem = nil   // crypto/hpke offers no zeroisation; dropping the reference is all we can do
	clear(lk.aes)
	lk.aes = nil
	lk.signer = nil
	lk.loaded = false
}

func (lk *liveKey) unload() {
	lk.mu.Lock()
	lk.destroyLocked()
	lk.mu.Unlock()
}

func (lk *liveKey) info(persistent bool) KeyInfo {
	lk.mu.RLock()
	defer lk.mu.RUnlock()
	k := KeyInfo{ID: lk.id, Class: lk.class, Algorithm: lk.alg, State: lk.life.State, Cause: lk.life.Cause,
		Created: lk.life.Created, Changed: lk.life.Changed, GraceUntil: lk.life.GraceUntil, Expires: lk.expires,
		Public: append([]byte(nil), lk.pub...), Policy: lk.base, Persistent: persistent, Resident: lk.resident != nil}
	if lk.class == ClassSession {
		k.Public = nil
	}
	k.Predecessor, k.Successor = lk.pred, lk.succ
	return k
}

// sessionEntry is a memory-only session key: its wrapped record.
type sessionEntry struct {
	rec []byte
}

func (e *sessionEntry) destroy() {
	clear(e.rec)
	e.rec = nil
}
