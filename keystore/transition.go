package keystore

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
)

func eventEntry(id KeyID, ev lifecycle.Event, detail string) audit.Entry {
	return audit.Entry{Time: ev.At, Kind: audit.KindLifecycle, Key: id, Op: uint8(ev.Kind), Cause: uint8(ev.Cause), Detail: detail}
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
