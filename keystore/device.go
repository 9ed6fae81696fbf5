package keystore

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/policy"
)

// setState publishes a new device-state snapshot.
func (s *Store) setState(f func(*policy.DeviceState)) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	next := *s.state.Load()
	f(&next)
	s.state.Store(&next)
}

// State returns the current device-state snapshot.
func (s *Store) State() policy.DeviceState { return *s.state.Load() }

func (s *Store) refreshPosture() {
	p := s.opts.Posture.Posture()
	var ost policy.OSTrust
	var att policy.Attestation
	if s.opts.OSTrust != nil {
		ost = s.opts.OSTrust.OSTrust()
	}
	if s.opts.Attestation != nil {
		att = s.opts.Attestation.Attestation()
	}
	s.setState(func(st *policy.DeviceState) { st.Posture, st.OSTrust, st.Attestation = p, ost, att })
}

// RefreshPosture observes posture, OS Trust and attestation now.
func (s *Store) RefreshPosture() { s.refreshPosture() }

// auditSyncEvery is how often the audit log is fsynced when entries were
// written since the last fsync (group commit). Every entry reaches the
// operating system before its use returns; this bounds what power loss or
// an OS crash can take: the entries of the last auditSyncEvery.
const auditSyncEvery = 200 * time.Millisecond

func (s *Store) startRefresher() {
	s.refreshPosture()
	every := s.opts.PostureRefresh
	if every <= 0 {
		every = 5 * time.Second
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		fsync := time.NewTicker(auditSyncEvery)
		defer fsync.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.refreshPosture()
			case <-fsync.C:
				s.log.Sync() // a failure is sticky: the next use is denied with audit_unavailable
			}
		}
	}()
}

// Authenticate records a user authentication (method e.g. "passphrase",
// "biometric") at the current time.
func (s *Store) Authenticate(method string) {
	now := s.now()
	s.setState(func(st *policy.DeviceState) { st.LastAuth, st.AuthMethod = now, method })
}

// SetAppAuthorized records whether the app session (or the calling process)
// is authorized.
func (s *Store) SetAppAuthorized(ok bool) {
	s.setState(func(st *policy.DeviceState) { st.AppAuthorized = ok })
}

// SetAssociation records the device's membership in its account (set by
// the device agent from the verified chain).
func (s *Store) SetAssociation(a policy.Association, account []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev.Revoked != 0 {
		return ErrDeviceRevoked
	}
	dev := s.dev
	dev.Association = uint8(a)
	dev.Account = append([]byte(nil), account...)
	if err := s.writeDevice(&dev, audit.Entry{Time: s.now(), Kind: audit.KindDevice, Detail: "association=" + a.String()}); err != nil {
		return err
	}
	s.dev = dev
	s.setState(func(st *policy.DeviceState) { st.Association = a })
	return nil
}

// SetPolicyOverlay tightens the requirements of every key of class c (an
// organisation's policy). It can never loosen a key's own requirements.
func (s *Store) SetPolicyOverlay(c Class, req policy.Requirements) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dev := s.dev
	dev.Overlay = map[record.Class]record.Policy{}
	for k, v := range s.dev.Overlay {
		dev.Overlay[k] = v
	}
	dev.Overlay[c] = record.FromRequirements(req)
	if err := s.writeDevice(&dev, audit.Entry{Time: s.now(), Kind: audit.KindDevice, Detail: "policy overlay for " + c.String()}); err != nil {
		return err
	}
	s.dev = dev
	for _, lk := range s.live {
		if lk.class == c {
			lk.mu.Lock()
			lk.req = lk.base.Tighten(req)
			lk.mu.Unlock()
		}
	}
	return nil
}

func (s *Store) writeDevice(dev *record.Device, e audit.Entry) error {
	if err := dev.Validate(); err != nil {
		return err
	}
	return s.commitLocked(func(tx *bolt.Tx) error { return putDevice(tx.Bucket(bucketMeta), dev) }, e)
}

func putDevice(m *bolt.Bucket, dev *record.Device) error {
	b, err := marshal(dev)
	if err != nil {
		return err
	}
	return m.Put(keyDevice, b)
}

// effective returns base tightened by the device's overlay for class c.
func (s *Store) effective(c Class, base policy.Requirements) policy.Requirements {
	if o, ok := s.dev.Overlay[c]; ok {
		return base.Tighten(o.Requirements())
	}
	return base
}
