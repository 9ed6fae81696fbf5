package keystore

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Session key TTL bounds.
const (
	DefaultSessionTTL = time.Hour
	MaxSessionTTL     = 24 * time.Hour
)

// GenerateOptions configure Generate.
type GenerateOptions struct {
	// Cause is the lifecycle event that generates the key (account setup,
	// device enrollment, …). Required.
	Cause lifecycle.Cause
	// Activate makes the key active at once; otherwise it stays created
	// (it may only prove possession for its own enrollment).
	Activate bool
	// Algorithm; zero means the class default (identity: hybrid).
	Algorithm Algorithm
	// Policy tightens the class default; it can never loosen it.
	Policy *policy.Requirements
	// TTL of a session key: 0 means DefaultSessionTTL; at most
	// MaxSessionTTL.
	TTL time.Duration
	// Persist stores a session key on disk (wrapped) instead of memory only.
	Persist bool

	predecessor []byte
}

var defaultAlg = map[Class]Algorithm{
	ClassIdentity: AlgHybrid, ClassKEM: AlgXWing, ClassSession: AlgAES256GCM, ClassBinding: AlgP256,
}

// Generate creates a key of class c on this device. The store must be
// unlocked (the new key is wrapped under its class's wrapping key).
func (s *Store) Generate(c Class, opts GenerateOptions) (KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lk, w, err := s.generateLocked(c, opts)
	if err != nil {
		return KeyInfo{}, err
	}
	persist := c != ClassSession || opts.Persist
	if persist {
		err = s.commitLocked(func(tx *bolt.Tx) error { return tx.Bucket(bucketKeys).Put(lk.id[:], w) }, createEntries(lk, opts.Activate)...)
		if err != nil {
			lk.unload()
			return KeyInfo{}, fmt.Errorf("keystore: storing key: %w", err)
		}
	} else {
		s.session[lk.id] = &sessionEntry{rec: w}
		for _, e := range createEntries(lk, opts.Activate) {
			s.log.Append(e)
		}
	}
	s.live[lk.id] = lk
	return lk.info(persist), nil
}

// generateLocked makes the key, its wrapped record bytes and its live entry.
func (s *Store) generateLocked(c Class, opts GenerateOptions) (*liveKey, []byte, error) {
	if err := s.usableLocked(); err != nil {
		return nil, nil, err
	}
	if !c.Valid() {
		return nil, nil, fmt.Errorf("keystore: unknown key class %d", c)
	}
	alg := opts.Algorithm
	if alg == 0 {
		alg = defaultAlg[c]
	}
	if !record.Allowed(c, alg) {
		return nil, nil, fmt.Errorf("%w: a %v key cannot use %v", ErrUnsupported, c, alg)
	}
	if !opts.Cause.Valid() {
		return nil, nil, errors.New("keystore: a generation cause is required")
	}
	now := s.now()
	life, err := lifecycle.New(opts.Cause, now)
	if err != nil {
		return nil, nil, err
	}
	if opts.Activate {
		if life, err = life.Apply(lifecycle.Event{Kind: lifecycle.Activate, Cause: opts.Cause, At: now}); err != nil {
			return nil, nil, err
		}
	}
	base, _ := policy.Default(policy.Class(c.String()))
	if opts.Policy != nil {
		base = base.Tighten(*opts.Policy)
	}
	lk := &liveKey{s: s, class: c, alg: alg, base: base, life: life}
	rand.Read(lk.id[:])
	if len(opts.predecessor) == 16 {
		var p KeyID
		copy(p[:], opts.predecessor)
		lk.pred = &p
	}
	lk.req = s.effective(c, base)
	meta := record.Meta{Version: record.Version, ID: lk.id[:], Class: c, Alg: alg, Policy: record.FromRequirements(base),
		Device: s.hdr.Device, Predecessor: opts.predecessor}
	meta.SetLifecycle(life)
	if c == ClassSession {
		ttl := opts.TTL
		if ttl == 0 {
			ttl = DefaultSessionTTL
		}
		if ttl < 0 || ttl > MaxSessionTTL {
			return nil, nil, fmt.Errorf("keystore: session TTL %v outside (0, %v]", ttl, MaxSessionTTL)
		}
		meta.Expires = now.Add(ttl).UnixMilli()
		lk.expires = record.Time(meta.Expires)
	}

	var material []byte
	defer func() { clear(material) }()
	switch alg {
	case AlgHybrid, AlgEd25519, AlgXWing, AlgAES256GCM, AlgCheckpointEd25519, AlgCheckpointMLDSA44:
		material = make([]byte, alg.SeedSize())
		rand.Read(material)
		if err := lk.setMaterial(material); err != nil {
			return nil, nil, err
		}
	case AlgP256:
		bk, ok := s.sess.(backend.BindingKeys)
		if !ok || !s.be.Capabilities().Holds(backend.AlgP256) {
			return nil, nil, fmt.Errorf("%w: the %s backend holds no hardware keys", ErrUnsupported, s.hdr.Backend)
		}
		blob, signer, err := bk.CreateBindingKey(context.Background())
		if err != nil {
			return nil, nil, fmt.Errorf("keystore: creating the binding key in hardware: %w", err)
		}
		pub, ok := signer.Public().(*ecdsa.PublicKey)
		if !ok {
			return nil, nil, fmt.Errorf("keystore: binding key public key is %T", signer.Public())
		}
		ep, err := pub.ECDH()
		if err != nil {
			return nil, nil, err
		}
		meta.Resident = blob
		lk.signer, lk.resident, lk.pub, lk.loaded = signer, blob, ep.Bytes(), true
	}
	meta.Public = lk.pub
	wb, err := s.sealMeta(meta, material)
	if err != nil {
		lk.unload()
		return nil, nil, err
	}
	return lk, wb, nil
}

// createEntries are the audit entries of a key's creation (and activation).
func createEntries(lk *liveKey, activated bool) []audit.Entry {
	now := lk.life.Created
	out := []audit.Entry{{Time: now, Kind: audit.KindLifecycle, Key: lk.id, Op: uint8(lifecycle.Create), Cause: uint8(lk.life.Cause),
		Detail: fmt.Sprintf("class=%v alg=%v", lk.class, lk.alg)}}
	if activated {
		out = append(out, audit.Entry{Time: now, Kind: audit.KindLifecycle, Key: lk.id, Op: uint8(lifecycle.Activate), Cause: uint8(lk.life.Cause)})
	}
	return out
}
