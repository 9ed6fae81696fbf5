package keystore

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
)

// Default grace periods of superseded keys.
var defaultGrace = map[Class]time.Duration{
	ClassIdentity: 24 * time.Hour,
	ClassKEM:      7 * 24 * time.Hour,
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
