package keystore

import (
	"context"
	"errors"
	"fmt"

	"github.com/enigm/enigm/backend"
)

// Hardware gates at use time.
//
// The class wrapping keys are unsealed once, at Unlock; after that no
// signature or decryption touches the backend. A gate the hardware enforces
// at each use of its own keys (the device must be unlocked, the boot state
// must not change, the key must not have been invalidated) is therefore
// carried over to the keys in memory by locking the store: when the app
// reports that the device locked (OnDeviceLocked), or when the hardware
// refuses a use (CheckHardware, or a binding-key signature), the store
// forgets its wrapping keys and every unwrapped key. Unlocking again needs
// the hardware, which refuses until its gate is satisfied.

// OnDeviceLocked is the app's signal that the device locked: the store
// locks (like Lock, audited as "device locked"). Apps whose keys must stay
// usable while the device is locked do not send it.
func (s *Store) OnDeviceLocked() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockLocked("device locked")
}

// CheckHardware makes the backend unseal a wrapping key again, so that the
// hardware evaluates its gates now, and returns what it says. If it refuses
// because the device is locked, the measured boot state changed, or the
// protection is gone (destroyed, or invalidated by a biometric change), the
// store locks. A refusal for missing user presence does not lock: the
// hardware's authentication window is shorter than a session, and the key
// policies decide on authentication age. A locked store returns nil.
//
// It costs one backend operation (on some hardware, one authentication):
// call it when the app returns to the foreground, not per key use.
func (s *Store) CheckHardware(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.sess == nil {
		return nil
	}
	key, err := s.sess.Unseal(ctx, kekLabel(ClassBinding), s.hdr.SealedKE[ClassBinding])
	clear(key)
	if err == nil {
		return nil
	}
	if hardwareRefused(err) {
		if lerr := s.lockLocked("hardware refused: " + failReason(err)); lerr != nil {
			err = errors.Join(err, lerr)
		}
	}
	return fmt.Errorf("keystore: the %s backend refused: %w", s.hdr.Backend, err)
}

// hardwareRefused reports whether err is a refusal by the hardware that
// the keys in memory must follow: the device locked, the boot state
// changed, the protection destroyed or invalidated.
func hardwareRefused(err error) bool {
	var g *backend.GateError
	if errors.As(err, &g) {
		return g.Gate == backend.GateDeviceUnlocked || g.Gate == backend.GateBootState
	}
	return errors.Is(err, backend.ErrDestroyed)
}

// lockAfterRefusal locks the store after the hardware refused a use with
// err (see hardwareRefused).
func (s *Store) lockAfterRefusal(err error) {
	if !hardwareRefused(err) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockLocked("hardware refused: " + failReason(err))
}
