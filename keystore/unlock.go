package keystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Unlock opens the backend with secret and brings the class wrapping keys
// into memory. It records a user authentication with method "passphrase".
func (s *Store) Unlock(ctx context.Context, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	now := s.now()
	if s.dev.Revoked != 0 {
		return ErrDeviceRevoked
	}
	if s.sess != nil {
		if err := s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlock, Detail: "re-authenticated"}); err != nil {
			return err
		}
		s.markUnlocked(now, "passphrase")
		return nil
	}
	if s.be == nil {
		return fmt.Errorf("%w: the %s backend is not available in this build or on this machine", backend.ErrUnavailable, s.hdr.Backend)
	}
	sess, err := s.be.Open(ctx, s.hdr.State, secret)
	if err != nil {
		s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlockFailed, Detail: failReason(err)})
		if errors.Is(err, backend.ErrBadSecret) {
			return fmt.Errorf("%w: %w", ErrBadPassphrase, err)
		}
		return fmt.Errorf("keystore: unlocking the %s backend: %w", s.hdr.Backend, err)
	}
	var k keks
	for _, c := range []Class{ClassIdentity, ClassKEM, ClassSession, ClassBinding} {
		key, err := sess.Unseal(ctx, kekLabel(c), s.hdr.SealedKE[c])
		if err == nil && len(key) != 32 {
			clear(key)
			err = fmt.Errorf("%w: wrapping key of %d bytes", backend.ErrSealedData, len(key))
		}
		if err != nil {
			k.clear()
			sess.Close()
			s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlockFailed, Detail: failReason(err)})
			switch {
			case errors.Is(err, backend.ErrBadSecret):
				return fmt.Errorf("%w: %w", ErrBadPassphrase, err)
			case errors.Is(err, backend.ErrGate), errors.Is(err, backend.ErrLockedOut), errors.Is(err, backend.ErrUnavailable):
				return fmt.Errorf("keystore: the %s backend refused to unseal the %v wrapping key: %w", s.hdr.Backend, c, err)
			}
			return corrupt("header: sealed "+c.String()+" wrapping key", err)
		}
		k.setClass(c, key)
	}
	// An unlock that cannot be put on record does not happen.
	if err := s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlock, Detail: "backend=" + s.hdr.Backend}); err != nil {
		k.clear()
		sess.Close()
		return err
	}
	s.sess, s.keks = sess, k
	s.markUnlocked(now, "passphrase")
	return nil
}

func failReason(err error) string {
	switch {
	case errors.Is(err, backend.ErrBadSecret):
		return "wrong secret"
	case errors.Is(err, backend.ErrLockedOut):
		return "locked out"
	case errors.Is(err, backend.ErrSealedData):
		return "sealed data does not open"
	case errors.Is(err, backend.ErrUnavailable):
		return "backend unavailable"
	case errors.Is(err, backend.ErrGate):
		return "hardware gate not satisfied"
	}
	return "backend error"
}

func (s *Store) markUnlocked(now time.Time, method string) {
	s.setState(func(st *policy.DeviceState) {
		st.Unlocked, st.LastAuth, st.AuthMethod = true, now, method
	})
}

// Lock forgets the wrapping keys and every unwrapped key, and ends the
// backend session. Memory-only session keys are destroyed.
func (s *Store) Lock() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockLocked("locked")
}

func (s *Store) lockLocked(why string) error {
	if s.sess == nil {
		return nil
	}
	s.setState(func(st *policy.DeviceState) { st.Unlocked = false })
	for _, lk := range s.live {
		lk.unload()
	}
	now := s.now()
	for id, e := range s.session {
		// Memory-only session keys do not survive a lock.
		e.destroy()
		delete(s.session, id)
		if lk := s.live[id]; lk != nil {
			ev := lifecycle.Event{Kind: lifecycle.Retire, Cause: lifecycle.Expiry, At: now}
			lk.mu.Lock()
			if life, err := lk.life.Apply(ev); err == nil {
				lk.life = life
			}
			lk.destroyLocked()
			lk.dead = true
			lk.mu.Unlock()
			s.log.Append(eventEntry(id, ev, "memory-only session key destroyed at lock"))
		}
	}
	s.keks.clear()
	err := s.sess.Close()
	s.sess = nil
	if aerr := s.commitLocked(nil, audit.Entry{Time: s.now(), Kind: audit.KindLock, Detail: why}); err == nil {
		err = aerr
	}
	return err
}
