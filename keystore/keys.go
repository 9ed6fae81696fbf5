package keystore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/audit"
	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

func marshal(v any) ([]byte, error) { return wire.Marshal(v) }

// Session key TTL bounds.
const (
	DefaultSessionTTL = time.Hour
	MaxSessionTTL     = 24 * time.Hour
)

// Default grace periods of superseded keys.
var defaultGrace = map[Class]time.Duration{
	ClassIdentity: 24 * time.Hour,
	ClassKEM:      7 * 24 * time.Hour,
}

// KeyInfo describes a key. It holds no secret.
type KeyInfo struct {
	ID          KeyID
	Class       Class
	Algorithm   Algorithm
	State       lifecycle.State
	Cause       lifecycle.Cause
	Created     time.Time
	Changed     time.Time
	GraceUntil  time.Time // superseded keys: decrypt/verify allowed until then
	Expires     time.Time // session keys
	Public      []byte    // nil for symmetric keys
	Policy      policy.Requirements
	Predecessor *KeyID
	Successor   *KeyID
	Persistent  bool // stored on disk (every class but memory-only session keys)
	Resident    bool // lives in the backend's hardware
	// Problem is set when the record is damaged; the other fields may be
	// incomplete. The record is left untouched.
	Problem string
}

func infoFromMeta(m *record.Meta, persistent bool) KeyInfo {
	var id KeyID
	copy(id[:], m.ID)
	k := KeyInfo{
		ID: id, Class: m.Class, Algorithm: m.Alg, State: lifecycle.State(m.State), Cause: lifecycle.Cause(m.Cause),
		Created: record.Time(m.Created), Changed: record.Time(m.Changed), GraceUntil: record.Time(m.GraceUntil),
		Expires: record.Time(m.Expires), Public: append([]byte(nil), m.Public...), Policy: m.Policy.Requirements(),
		Persistent: persistent, Resident: len(m.Resident) > 0,
	}
	if len(m.Predecessor) == 16 {
		var p KeyID
		copy(p[:], m.Predecessor)
		k.Predecessor = &p
	}
	if len(m.Successor) == 16 {
		var p KeyID
		copy(p[:], m.Successor)
		k.Successor = &p
	}
	return k
}

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

func (s *Store) usableLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.dev.Revoked != 0:
		return ErrDeviceRevoked
	case s.sess == nil:
		return ErrLocked
	}
	return nil
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
	case AlgHybrid, AlgEd25519, AlgXWing, AlgAES256GCM:
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

// sealMeta wraps material (nil: tag only) under the class's wrapping key.
// It dispatches on the class to the typed seal.
func (s *Store) sealMeta(meta record.Meta, material []byte) ([]byte, error) {
	switch meta.Class {
	case ClassIdentity:
		return sealEncoded(&s.keks.identity, meta, material)
	case ClassKEM:
		return sealEncoded(&s.keks.kem, meta, material)
	case ClassSession:
		return sealEncoded(&s.keks.session, meta, material)
	case ClassBinding:
		return sealEncoded(&s.keks.binding, meta, material)
	}
	return nil, fmt.Errorf("keystore: unknown class %d", meta.Class)
}

// tombstoneMeta encodes a record without material: tagged when the class
// key is in memory, bare otherwise.
func (s *Store) tombstoneMeta(meta record.Meta) ([]byte, error) {
	switch meta.Class {
	case ClassIdentity:
		return tombstoneEncoded(&s.keks.identity, meta)
	case ClassKEM:
		return tombstoneEncoded(&s.keks.kem, meta)
	case ClassSession:
		return tombstoneEncoded(&s.keks.session, meta)
	case ClassBinding:
		return tombstoneEncoded(&s.keks.binding, meta)
	}
	return nil, fmt.Errorf("keystore: unknown class %d", meta.Class)
}

func sealEncoded[T classTag](k *kek[T], meta record.Meta, material []byte) ([]byte, error) {
	w, err := seal(k, meta, material)
	if err != nil {
		return nil, err
	}
	return record.Encode(&w.rec)
}

func tombstoneEncoded[T classTag](k *kek[T], meta record.Meta) ([]byte, error) {
	w, err := tombstone(k, meta)
	if err != nil {
		return nil, err
	}
	return record.Encode(&w.rec)
}

// openDecoded unwraps a decoded record's material, dispatching on class to
// the typed open. The caller must clear the result.
func (s *Store) openDecoded(d *record.Decoded) ([]byte, error) {
	switch d.Meta.Class {
	case ClassIdentity:
		return openAs(&s.keks.identity, d)
	case ClassKEM:
		return openAs(&s.keks.kem, d)
	case ClassSession:
		return openAs(&s.keks.session, d)
	}
	return nil, fmt.Errorf("%w: class %v has no software material", ErrUnsupported, d.Meta.Class)
}

func openAs[T classTag](k *kek[T], d *record.Decoded) ([]byte, error) {
	w, err := asWrapped[T](d)
	if err != nil {
		return nil, err
	}
	return open(k, w)
}

// effective returns base tightened by the device's overlay for class c.
func (s *Store) effective(c Class, base policy.Requirements) policy.Requirements {
	if o, ok := s.dev.Overlay[c]; ok {
		return base.Tighten(o.Requirements())
	}
	return base
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

func eventEntry(id KeyID, ev lifecycle.Event, detail string) audit.Entry {
	return audit.Entry{Time: ev.At, Kind: audit.KindLifecycle, Key: id, Op: uint8(ev.Kind), Cause: uint8(ev.Cause), Detail: detail}
}

// readRecord reads and parses a stored record; errors name the key.
func readRecord(tx *bolt.Tx, id KeyID) (*record.Decoded, error) {
	b := tx.Bucket(bucketKeys).Get(id[:])
	if b == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	d, err := record.Parse(b)
	if err != nil {
		return nil, corrupt("key "+id.String(), err)
	}
	if string(d.Meta.ID) != string(id[:]) {
		return nil, corrupt("key "+id.String(), errors.New("record is stored under another key's id"))
	}
	return d, nil
}

// List returns every key, stored and in memory, oldest first. A damaged
// record is listed with Problem set; it does not hide the others.
func (s *Store) List() ([]KeyInfo, error) {
	var out []KeyInfo
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			var id KeyID
			copy(id[:], k)
			d, err := record.Parse(v)
			if err == nil && string(d.Meta.ID) != string(k) {
				err = errors.New("record is stored under another key's id")
			}
			if err != nil {
				out = append(out, KeyInfo{ID: id, Persistent: true, Problem: corrupt("key "+id.String(), err).Error()})
				return nil
			}
			out = append(out, infoFromMeta(&d.Meta, true))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for id, e := range s.session {
		if lk := s.live[id]; lk != nil && e.rec != nil {
			out = append(out, lk.info(false))
		}
	}
	s.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, nil
}

// Info returns one key's description.
func (s *Store) Info(id KeyID) (KeyInfo, error) {
	s.mu.Lock()
	if _, ok := s.session[id]; ok {
		defer s.mu.Unlock()
		return s.live[id].info(false), nil
	}
	s.mu.Unlock()
	var info KeyInfo
	err := s.view(func(tx *bolt.Tx) error {
		d, err := readRecord(tx, id)
		if err != nil {
			return err
		}
		info = infoFromMeta(&d.Meta, true)
		return nil
	})
	return info, err
}

// Resolve finds the key whose hex id starts with prefix (at least 6 digits).
func (s *Store) Resolve(prefix string) (KeyID, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if len(prefix) == 32 {
		return ParseKeyID(prefix)
	}
	if len(prefix) < 6 {
		return KeyID{}, fmt.Errorf("%w: give at least 6 hex digits of the key id", ErrNotFound)
	}
	keys, err := s.List()
	if err != nil {
		return KeyID{}, err
	}
	var found []KeyID
	for _, k := range keys {
		if strings.HasPrefix(k.ID.String(), prefix) {
			found = append(found, k.ID)
		}
	}
	switch len(found) {
	case 0:
		return KeyID{}, fmt.Errorf("%w: %s", ErrNotFound, prefix)
	case 1:
		return found[0], nil
	}
	return KeyID{}, fmt.Errorf("%w: %s matches %d keys", ErrAmbiguous, prefix, len(found))
}

// RotateOptions configure Rotate.
type RotateOptions struct {
	// Cause: lifecycle.Rotation (default) or lifecycle.Replacement.
	Cause lifecycle.Cause
	// Grace: how long the superseded key may still decrypt and verify;
	// 0 means the class default (identity 24h, KEM 7 days). Session and
	// binding keys are retired at once instead.
	Grace time.Duration
}

// Rotate replaces an active key with a new one of the same class,
// algorithm and policy, in one transaction: the new key is created and
// activated, the old one superseded (identity, KEM) or retired (session,
// binding). It returns the new key.
func (s *Store) Rotate(id KeyID, opts RotateOptions) (KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return KeyInfo{}, err
	}
	cause := opts.Cause
	if cause == 0 {
		cause = lifecycle.Rotation
	}
	if cause != lifecycle.Rotation && cause != lifecycle.Replacement {
		return KeyInfo{}, fmt.Errorf("keystore: rotation cause must be rotation or replacement, not %v", cause)
	}
	old, memory, err := s.loadMetaLocked(id)
	if err != nil {
		return KeyInfo{}, err
	}
	if lifecycle.State(old.Meta.State) != lifecycle.Active {
		return KeyInfo{}, fmt.Errorf("%w: key %s is %v; only active keys rotate", ErrDenied, id.Short(), lifecycle.State(old.Meta.State))
	}
	base := old.Meta.Policy.Requirements()
	ttl := time.Duration(0)
	if old.Meta.Class == ClassSession {
		ttl = record.Time(old.Meta.Expires).Sub(record.Time(old.Meta.Created))
	}
	nlk, nrec, err := s.generateLocked(old.Meta.Class, GenerateOptions{Cause: cause, Activate: true, Algorithm: old.Meta.Alg,
		Policy: &base, TTL: ttl, Persist: !memory, predecessor: id[:]})
	if err != nil {
		return KeyInfo{}, err
	}
	ev := endEvent(old.Meta.Class, cause, nlk.life.Created, opts.Grace)
	meta := old.Meta
	meta.Successor = nlk.id[:]
	orec, nextLife, err := s.transitionLocked(old, &meta, ev)
	if err != nil {
		nlk.unload()
		return KeyInfo{}, err
	}
	entries := append(createEntries(nlk, true), eventEntry(id, ev, "successor="+nlk.id.String()))
	if memory {
		s.session[nlk.id] = &sessionEntry{rec: nrec}
		s.session[id].rec = orec
		for _, e := range entries {
			s.log.Append(e)
		}
	} else {
		err = s.commitLocked(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketKeys)
			if err := b.Put(nlk.id[:], nrec); err != nil {
				return err
			}
			return b.Put(id[:], orec)
		}, entries...)
		if err != nil {
			nlk.unload()
			return KeyInfo{}, fmt.Errorf("keystore: storing rotation: %w", err)
		}
	}
	s.live[nlk.id] = nlk
	s.applyLive(id, nextLife)
	if olk := s.live[id]; olk != nil {
		olk.mu.Lock()
		succ := nlk.id
		olk.succ = &succ
		olk.mu.Unlock()
	}
	return nlk.info(!memory), nil
}

// endEvent is what happens to the key a rotation replaces: identity and
// KEM keys are superseded with a grace period (grace, or the class
// default), session and binding keys retired at once, as is any key when
// grace is negative.
func endEvent(c Class, cause lifecycle.Cause, at time.Time, grace time.Duration) lifecycle.Event {
	if grace == 0 {
		grace = defaultGrace[c]
	}
	if c == ClassSession || c == ClassBinding || grace < 0 {
		return lifecycle.Event{Kind: lifecycle.Retire, Cause: cause, At: at}
	}
	return lifecycle.Event{Kind: lifecycle.Supersede, Cause: cause, At: at, GraceUntil: at.Add(grace)}
}

// loadMetaLocked returns a key's decoded record from memory or disk.
func (s *Store) loadMetaLocked(id KeyID) (d *record.Decoded, memory bool, err error) {
	if e, ok := s.session[id]; ok {
		d, err := record.Parse(e.rec)
		if err != nil {
			return nil, true, corrupt("session key "+id.String(), err)
		}
		return d, true, nil
	}
	err = s.view(func(tx *bolt.Tx) error {
		d, err = readRecord(tx, id)
		return err
	})
	return d, false, err
}

// transitionLocked applies ev to a record and returns the new record bytes.
// Material is kept (re-wrapped under the new metadata) while the new state
// holds it, and dropped otherwise.
func (s *Store) transitionLocked(d *record.Decoded, meta *record.Meta, ev lifecycle.Event) ([]byte, lifecycle.Key, error) {
	var id KeyID
	copy(id[:], d.Meta.ID)
	life, err := d.Meta.Lifecycle().Apply(ev)
	if err != nil {
		return nil, life, fmt.Errorf("keystore: key %s: %w", id.Short(), err)
	}
	meta.SetLifecycle(life)
	if !life.State.HoldsMaterial() || !d.Sealed {
		rec, err := s.tombstoneMeta(*meta)
		return rec, life, err
	}
	if s.sess == nil {
		return nil, life, ErrLocked
	}
	material, err := s.openDecoded(d)
	if err != nil {
		return nil, life, err
	}
	defer clear(material)
	rec, err := s.sealMeta(*meta, material)
	return rec, life, err
}

// applyLive updates a cached key after a transition.
func (s *Store) applyLive(id KeyID, life lifecycle.Key) {
	lk := s.live[id]
	if lk == nil {
		return
	}
	lk.mu.Lock()
	lk.life = life
	if !life.State.HoldsMaterial() {
		lk.destroyLocked()
		lk.dead = true
	}
	lk.mu.Unlock()
}

// Activate moves a created key to active (the enrollment it was created for
// completed).
func (s *Store) Activate(id KeyID, cause lifecycle.Cause) error {
	return s.transition(id, lifecycle.Event{Kind: lifecycle.Activate, Cause: cause}, "")
}

// RevokeKey revokes one key: its material is destroyed and it can never be
// used again. It works while locked.
func (s *Store) RevokeKey(id KeyID) error {
	return s.transition(id, lifecycle.Event{Kind: lifecycle.Revoke, Cause: lifecycle.Revocation}, "")
}

// RetireKey retires a key now (material destroyed, tombstone kept).
func (s *Store) RetireKey(id KeyID, cause lifecycle.Cause) error {
	return s.transition(id, lifecycle.Event{Kind: lifecycle.Retire, Cause: cause}, "")
}

func (s *Store) transition(id KeyID, ev lifecycle.Event, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.dev.Revoked != 0 {
		return ErrDeviceRevoked
	}
	ev.At = s.now()
	d, memory, err := s.loadMetaLocked(id)
	if err != nil {
		return err
	}
	meta := d.Meta
	rec, life, err := s.transitionLocked(d, &meta, ev)
	if err != nil {
		return err
	}
	if memory {
		if life.State.HoldsMaterial() {
			s.session[id].rec = rec
		} else {
			s.session[id].destroy()
			delete(s.session, id)
		}
		s.log.Append(eventEntry(id, ev, detail))
	} else if err := s.commitLocked(func(tx *bolt.Tx) error { return tx.Bucket(bucketKeys).Put(id[:], rec) }, eventEntry(id, ev, detail)); err != nil {
		return fmt.Errorf("keystore: storing %s of key %s: %w", ev.Kind, id.Short(), err)
	}
	s.applyLive(id, life)
	return nil
}

// Maintain retires superseded keys whose grace period has ended and session
// keys past their TTL. Open and Unlock run it; long-running agents should
// run it periodically.
func (s *Store) Maintain() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.dev.Revoked != 0 {
		return nil
	}
	now := s.now()
	type due struct {
		id    KeyID
		cause lifecycle.Cause
	}
	var todo []due
	for id := range s.session {
		if lk := s.live[id]; lk != nil && !lk.expires.IsZero() && now.After(lk.expires) {
			todo = append(todo, due{id, lifecycle.Expiry})
		}
	}
	s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			d, err := record.Parse(v)
			if err != nil {
				return nil // damaged records are reported by List, never touched
			}
			var id KeyID
			copy(id[:], k)
			switch st := lifecycle.State(d.Meta.State); {
			case st == lifecycle.Superseded && now.After(record.Time(d.Meta.GraceUntil)):
				todo = append(todo, due{id, lifecycle.Retirement})
			case d.Meta.Expires != 0 && st.HoldsMaterial() && now.After(record.Time(d.Meta.Expires)):
				todo = append(todo, due{id, lifecycle.Expiry})
			}
			return nil
		})
	})
	var firstErr error
	for _, t := range todo {
		ev := lifecycle.Event{Kind: lifecycle.Retire, Cause: t.cause, At: now}
		d, memory, err := s.loadMetaLocked(t.id)
		if err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		meta := d.Meta
		rec, life, err := s.transitionLocked(d, &meta, ev)
		if err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		if memory {
			s.session[t.id].destroy()
			delete(s.session, t.id)
			s.log.Append(eventEntry(t.id, ev, ""))
		} else if err := s.commitLocked(func(tx *bolt.Tx) error { return tx.Bucket(bucketKeys).Put(t.id[:], rec) }, eventEntry(t.id, ev, "")); err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		s.applyLive(t.id, life)
	}
	return firstErr
}

// RevokeDevice is what a device does when it learns it was revoked: every
// key moves to revoked and its material is destroyed, the backend destroys
// its hardware objects, the database is compacted into a fresh file and the
// old file overwritten, and from then on every key use is denied with
// reason "revoked". It works while locked and cannot be undone.
func (s *Store) RevokeDevice(ctx context.Context, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.dev.Revoked != 0 {
		return nil
	}
	now := s.now()
	ev := lifecycle.Event{Kind: lifecycle.Revoke, Cause: lifecycle.Revocation, At: now}
	dev := s.dev
	dev.Revoked = now.UnixMilli()
	dev.Association = uint8(policy.Unassociated)
	// Build every tombstone first, then write them all, the device entry
	// and the audit entries in one commit.
	type change struct {
		key []byte
		rec []byte // nil: delete (a damaged record cannot become a tombstone)
	}
	var changes []change
	entries := []audit.Entry{{Time: now, Kind: audit.KindDevice, Detail: "device revoked: " + why}}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			key := append([]byte(nil), k...)
			d, err := record.Parse(v)
			if err != nil {
				changes = append(changes, change{key: key})
				return nil
			}
			if lifecycle.State(d.Meta.State) == lifecycle.Revoked {
				return nil
			}
			meta := d.Meta
			life, err := meta.Lifecycle().Apply(ev)
			if err != nil {
				return err
			}
			meta.SetLifecycle(life)
			rec, err := s.tombstoneMeta(meta)
			if err != nil {
				return err
			}
			changes = append(changes, change{key, rec})
			var id KeyID
			copy(id[:], k)
			entries = append(entries, eventEntry(id, ev, "device revoked"))
			return nil
		})
	})
	if err == nil {
		err = s.commitLocked(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketKeys)
			for _, c := range changes {
				var err error
				if c.rec == nil {
					err = b.Delete(c.key)
				} else {
					err = b.Put(c.key, c.rec)
				}
				if err != nil {
					return err
				}
			}
			return putDevice(tx.Bucket(bucketMeta), &dev)
		}, entries...)
	}
	if err != nil {
		return fmt.Errorf("keystore: revoking device: %w", err)
	}
	s.dev = dev
	s.setState(func(st *policy.DeviceState) { st.Revoked, st.Association = true, policy.Unassociated })
	for id, e := range s.session {
		e.destroy()
		delete(s.session, id)
	}
	for _, lk := range s.live {
		lk.mu.Lock()
		lk.destroyLocked()
		lk.dead = true
		lk.life.State = lifecycle.Revoked
		lk.mu.Unlock()
	}
	// Destroy before locking: some hardware (PKCS#11) can remove private
	// objects only while a session is logged in.
	var errs error
	if s.be != nil {
		if err := s.be.Destroy(ctx, s.hdr.State); err != nil {
			errs = errors.Join(errs, fmt.Errorf("keystore: destroying %s backend objects: %w", s.hdr.Backend, err))
		}
	} else {
		errs = errors.Join(errs, fmt.Errorf("keystore: the %s backend is unavailable here: its hardware objects were not destroyed", s.hdr.Backend))
	}
	if err := s.lockLocked("device revoked"); err != nil {
		errs = errors.Join(errs, err)
	}
	if err := s.compactLocked(); err != nil {
		errs = errors.Join(errs, err)
	}
	errs = errors.Join(errs, s.commitLocked(nil))
	return errs
}

// compactLocked rewrites the database into a fresh file so that freed pages
// holding destroyed records do not survive, then overwrites the old file's
// contents. On flash storage and copy-on-write file systems overwriting is
// best effort; the hardware backends' Destroy is what makes residue useless.
func (s *Store) compactLocked() error {
	path := filepath.Join(s.home, DBFile)
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return fmt.Errorf("keystore: compacting: %w", err)
	}
	if err := bolt.Compact(dst, s.db, 1<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("keystore: compacting: %w", err)
	}
	dst.Close()
	old, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer old.Close()
	st, err := old.Stat()
	if err != nil {
		return err
	}
	s.db.Close()
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keystore: replacing the compacted database: %w", err)
	}
	if _, err := io.CopyN(old, zeroReader{}, st.Size()); err != nil {
		return fmt.Errorf("keystore: overwriting the old database: %w", err)
	}
	old.Sync()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("keystore: reopening after compaction: %w", err)
	}
	s.db = db
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

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
	case AlgEd25519:
		lk.ed = ed25519.NewKeyFromSeed(m)
		lk.pub = append([]byte(nil), lk.ed.Public().(ed25519.PublicKey)...)
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
	lk.kem = nil // crypto/hpke offers no zeroisation; dropping the reference is all we can do
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

// Promote finishes a rotation whose new key was created first, so that it
// could prove possession in a chain link, and is activated only once that
// link was accepted: in one transaction newID goes from created to active
// and oldID is superseded (or retired, for session and binding keys) with
// newID as its successor.
func (s *Store) Promote(oldID, newID KeyID, opts RotateOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	cause := opts.Cause
	if cause == 0 {
		cause = lifecycle.Rotation
	}
	od, omem, err := s.loadMetaLocked(oldID)
	if err != nil {
		return err
	}
	nd, nmem, err := s.loadMetaLocked(newID)
	if err != nil {
		return err
	}
	if omem || nmem {
		return fmt.Errorf("%w: Promote works on stored keys", ErrUnsupported)
	}
	if od.Meta.Class != nd.Meta.Class {
		return fmt.Errorf("%w: %s is %v, %s is %v", ErrWrongClass, oldID.Short(), od.Meta.Class, newID.Short(), nd.Meta.Class)
	}
	now := s.now()
	act := lifecycle.Event{Kind: lifecycle.Activate, Cause: cause, At: now}
	nmeta := nd.Meta
	nmeta.Predecessor = oldID[:]
	nrec, nlife, err := s.transitionLocked(nd, &nmeta, act)
	if err != nil {
		return err
	}
	ev := endEvent(od.Meta.Class, cause, now, opts.Grace)
	ometa := od.Meta
	ometa.Successor = newID[:]
	orec, olife, err := s.transitionLocked(od, &ometa, ev)
	if err != nil {
		return err
	}
	err = s.commitLocked(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if err := b.Put(newID[:], nrec); err != nil {
			return err
		}
		return b.Put(oldID[:], orec)
	}, eventEntry(newID, act, "predecessor="+oldID.String()), eventEntry(oldID, ev, "successor="+newID.String()))
	if err != nil {
		return fmt.Errorf("keystore: storing promotion: %w", err)
	}
	s.applyLive(newID, nlife)
	s.applyLive(oldID, olife)
	if lk := s.live[newID]; lk != nil {
		lk.mu.Lock()
		p := oldID
		lk.pred = &p
		lk.mu.Unlock()
	}
	if lk := s.live[oldID]; lk != nil {
		lk.mu.Lock()
		n := newID
		lk.succ = &n
		lk.mu.Unlock()
	}
	return nil
}
