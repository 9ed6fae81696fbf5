package chain

import (
	"maps"
	"slices"
	"time"

	"github.com/enigm/enigm/hybrid"
)

// State is the verified state of an account's chain after some link: the
// account's devices, keys, policy, organisation, recovery key and pending
// recovery. States are immutable: Apply returns a new State and never
// changes its input, so a State is safe for concurrent use and an old State
// stays valid after newer ones are derived from it.
type State struct {
	account  AccountID
	head     Head
	time     int64
	policy   Policy
	org      *Org
	recovery *hybrid.PublicKey
	nActive  int
	pending  *PendingRecovery

	// Maps are shared between states and copied before the first write
	// (copy on write); the own* flags say this State holds a private copy.
	devices map[DeviceID]*DeviceRecord // every device the account ever had
	keys    map[Hash]struct{}          // every public key the account ever used
	closed  map[Hash]struct{}          // vetoed or cancelled recovery requests

	ownDevices, ownKeys, ownClosed bool
}

// DeviceStatus is a device's standing in the account.
type DeviceStatus uint8

// Device statuses.
const (
	StatusActive  DeviceStatus = 1 // trusted: may sign, receives message keys
	StatusRevoked DeviceStatus = 2 // revoked: trusted for nothing, ever again
	StatusRetired DeviceStatus = 3 // replaced by another device: trusted for nothing
)

func (s DeviceStatus) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusRevoked:
		return "revoked"
	case StatusRetired:
		return "retired"
	}
	return "unknown"
}

// AuthorityKind says which kind of key authorised a change.
type AuthorityKind uint8

// Authority kinds.
const (
	ByGenesis  AuthorityKind = 1 // the device created the account
	ByDevice   AuthorityKind = 2 // an active device of the account
	ByRecovery AuthorityKind = 3 // the recovery workflow (a device added by recover); the recovery key never revokes
	ByOrg      AuthorityKind = 4 // the organisation key (revoke_device)
)

// Authority names who authorised adding or ending a device.
type Authority struct {
	Kind   AuthorityKind
	Device DeviceID // for ByDevice: the approving, revoking or replaced device
	Org    bool     // the organisation counter-signed (enrollment or recovery)
}

// DeviceRecord is a device as the chain knows it.
type DeviceRecord struct {
	Device
	Status DeviceStatus

	AddedSeq   uint64    // seq of the link that added the device
	AddedAt    time.Time // that link's timestamp
	AddedBy    LinkType  // genesis, add_device, replace_device or recover
	ApprovedBy Authority

	// AttestationVerified: the device's evidence was accepted by the
	// AttestationVerifier given to Apply when the device was added.
	AttestationVerified bool

	RotatedSeq uint64 // seq of the last rotate_keys; 0 if never rotated

	EndedSeq   uint64    // seq of the link that revoked or retired it; 0 while active
	EndedAt    time.Time // that link's timestamp
	EndedBy    Authority // who revoked it (for a retired device: the device itself)
	ReplacedBy DeviceID  // for a retired device: its replacement
}

// PendingRecovery is a recovery request waiting for its waiting period.
type PendingRecovery struct {
	Request Hash          // hash of the recovery_request link
	Seq     uint64        // its sequence number
	Time    time.Time     // its timestamp: the waiting period starts here
	Delay   time.Duration // the waiting period in force when it was made
	Device  Device        // the device recover would add
}

// Account returns the account id.
func (s *State) Account() AccountID { return s.account }

// Head returns the sequence number and hash of the last applied link.
func (s *State) Head() Head { return s.head }

// Time returns the last applied link's timestamp.
func (s *State) Time() time.Time { return time.Unix(s.time, 0).UTC() }

// Policy returns the account policy.
func (s *State) Policy() Policy { return s.policy }

// Org returns the organisation of a managed account.
func (s *State) Org() (Org, bool) {
	if s.org == nil {
		return Org{}, false
	}
	return *s.org, true
}

// Managed reports whether the account has an organisation.
func (s *State) Managed() bool { return s.org != nil }

// RecoveryKey returns the current recovery public key.
func (s *State) RecoveryKey() *hybrid.PublicKey { return s.recovery }

// Device returns the record of a device the account has or had.
func (s *State) Device(id DeviceID) (DeviceRecord, bool) {
	r, ok := s.devices[id]
	if !ok {
		return DeviceRecord{}, false
	}
	return *r, true
}

// IsActive reports whether id is an active device of the account.
func (s *State) IsActive(id DeviceID) bool {
	r, ok := s.devices[id]
	return ok && r.Status == StatusActive
}

// ActiveCount returns the number of active devices.
func (s *State) ActiveCount() int { return s.nActive }

// Devices returns every device the account ever had, in the order they were
// added.
func (s *State) Devices() []DeviceRecord { return s.list(0) }

// Active returns the active devices in the order they were added: the
// devices that may sign links and receive message keys.
func (s *State) Active() []DeviceRecord { return s.list(StatusActive) }

// Revoked returns the revoked devices in the order they were added.
func (s *State) Revoked() []DeviceRecord { return s.list(StatusRevoked) }

// Retired returns the devices retired by replace_device.
func (s *State) Retired() []DeviceRecord { return s.list(StatusRetired) }

func (s *State) list(st DeviceStatus) []DeviceRecord {
	out := make([]DeviceRecord, 0, len(s.devices))
	for _, r := range s.devices {
		if st == 0 || r.Status == st {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b DeviceRecord) int {
		if a.AddedSeq != b.AddedSeq {
			if a.AddedSeq < b.AddedSeq {
				return -1
			}
			return 1
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// PendingRecovery returns the pending recovery request, if any.
func (s *State) PendingRecovery() (PendingRecovery, bool) {
	if s.pending == nil {
		return PendingRecovery{}, false
	}
	return *s.pending, true
}

// derive returns a State that Apply may change: a shallow copy whose maps
// are copied on first write. In place (VerifyChain's private state) it
// returns s itself.
func (s *State) derive(inPlace bool) *State {
	if inPlace {
		return s
	}
	c := *s
	c.ownDevices, c.ownKeys, c.ownClosed = false, false, false
	return &c
}

func (s *State) putDevice(r *DeviceRecord) {
	if !s.ownDevices {
		s.devices = maps.Clone(s.devices)
		s.ownDevices = true
	}
	s.devices[r.ID] = r
}

func (s *State) useKeys(hs ...Hash) {
	if !s.ownKeys {
		s.keys = maps.Clone(s.keys)
		s.ownKeys = true
	}
	for _, h := range hs {
		s.keys[h] = struct{}{}
	}
}

func (s *State) closeRequest(h Hash) {
	if !s.ownClosed {
		s.closed = maps.Clone(s.closed)
		s.ownClosed = true
	}
	s.closed[h] = struct{}{}
}
