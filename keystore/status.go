package keystore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Status describes the store.
type Status struct {
	Backend     string
	Protection  backend.Level
	Available   bool // the backend can be reached from this process
	Locked      bool
	Revoked     bool
	RevokedAt   time.Time
	Association policy.Association
	Account     []byte
	Device      [16]byte
	Created     time.Time
	Keys        map[lifecycle.State]int
	Audit       AuditStatus
	AuditHead   uint64
	Gates       []backend.Gate
	Attestation []string // evidence types the backend can produce
	Posture     policy.Posture
}

// Status reports the store's state.
func (s *Store) Status() (Status, error) {
	s.mu.Lock()
	st := Status{
		Backend: s.hdr.Backend, Protection: backend.Level(s.hdr.Level), Available: s.be != nil,
		Locked: s.sess == nil, Revoked: s.dev.Revoked != 0, Association: policy.Association(s.dev.Association),
		Account: append([]byte(nil), s.dev.Account...), Device: s.DeviceID(), Created: record.Time(s.hdr.Created),
		Keys: map[lifecycle.State]int{}, Audit: s.auditRep, AuditHead: s.log.Head().Seq,
		Posture: s.state.Load().Posture,
	}
	if s.dev.Revoked != 0 {
		st.RevokedAt = record.Time(s.dev.Revoked)
	}
	if s.be != nil {
		caps := s.be.Capabilities()
		if sc, ok := s.be.(backend.StoreCapabilities); ok { // this store's, not a new one's
			caps = sc.CapabilitiesOf(s.hdr.State)
		}
		st.Gates, st.Attestation = caps.HardwareGates, caps.Attestation
	}
	s.mu.Unlock()
	infos, err := s.List()
	if err != nil {
		return st, err
	}
	for _, k := range infos {
		st.Keys[k.State]++
	}
	return st, nil
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
