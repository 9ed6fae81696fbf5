// Package record holds the keystore's persisted formats: the wrapped key
// record, the store header and the device-state entry. All are strict,
// deterministic CBOR (internal/wire); every decoder validates its result.
//
// # Wrapped record
//
//	Record = {1: meta (bstr: canonical CBOR of Meta), 2: nonce (bstr 12),
//	          3: sealed (bstr: AES-256-GCM ciphertext || tag), 4: tag-only (bool)}
//
// The AEAD's additional data is "enigm/v1/record\x00" || meta, exactly the
// bytes stored, so the metadata (format version, key id, class, algorithm,
// lifecycle state, policy, device id, times, public key) is bound to the
// ciphertext: changing any byte of a record makes it fail to open.
// Records whose material was destroyed (retired, revoked) keep their meta
// and, when written while the store was unlocked, a tag over an empty
// plaintext.
package record

import (
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Version is the record and header format version.
const Version = 1

// Size limits for decoding.
const (
	MaxRecordSize = 16 << 10
	MaxHeaderSize = 64 << 10
	MaxDeviceSize = 4 << 10
	MaxPublicSize = 4096
	MaxBlobSize   = 8192
	MaxMethods    = 8
	MaxMethodLen  = 32
	NonceSize     = 12
	TagSize       = 16
	IDSize        = 16
)

// Class of a key. Values are persisted: never reorder.
type Class uint8

// Classes.
const (
	ClassIdentity Class = iota + 1
	ClassKEM
	ClassSession
	ClassBinding
)

var classNames = [...]string{"", "identity", "kem", "session", "binding"}

func (c Class) String() string {
	if c >= ClassIdentity && c <= ClassBinding {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Valid reports whether c is known.
func (c Class) Valid() bool { return c >= ClassIdentity && c <= ClassBinding }

// ParseClass parses a class name.
func ParseClass(s string) (Class, bool) {
	for c := ClassIdentity; c <= ClassBinding; c++ {
		if classNames[c] == s {
			return c, true
		}
	}
	return 0, false
}

// Algorithm of a key. Values are persisted: never reorder.
type Algorithm uint8

// Algorithms.
const (
	AlgHybrid    Algorithm = iota + 1 // Ed25519 + ML-DSA-65, 64-byte seed
	AlgEd25519                        // Ed25519 alone, 32-byte seed (classical only)
	AlgXWing                          // HPKE MLKEM768X25519, 32-byte seed
	AlgAES256GCM                      // 32-byte AEAD key
	AlgP256                           // ECDSA P-256 resident in hardware
	// Transparency-log checkpoint keys (Command's log, translog.md): they
	// sign checkpoint notes and nothing else, 32-byte seeds.
	AlgCheckpointEd25519 // Ed25519 over a c2sp.org/tlog-checkpoint note text
	AlgCheckpointMLDSA44 // ML-DSA-44 over a c2sp.org/tlog-cosignature subtree message
)

// algLast is the highest algorithm value.
const algLast = AlgCheckpointMLDSA44

var algNames = [...]string{"", "ed25519+ml-dsa-65", "ed25519", "ml-kem-768+x25519", "aes-256-gcm", "ecdsa-p256", "checkpoint-ed25519", "checkpoint-ml-dsa-44"}

func (a Algorithm) String() string {
	if a >= AlgHybrid && a <= algLast {
		return algNames[a]
	}
	return fmt.Sprintf("alg(%d)", uint8(a))
}

// ParseAlgorithm parses an algorithm name.
func ParseAlgorithm(s string) (Algorithm, bool) {
	for a := AlgHybrid; a <= algLast; a++ {
		if algNames[a] == s {
			return a, true
		}
	}
	return 0, false
}

// SeedSize is the size of the secret material of a software algorithm
// (0 for hardware-resident ones).
func (a Algorithm) SeedSize() int {
	switch a {
	case AlgHybrid:
		return 64
	case AlgEd25519, AlgXWing, AlgAES256GCM, AlgCheckpointEd25519, AlgCheckpointMLDSA44:
		return 32
	}
	return 0
}

// classAlgs lists the algorithms each class may use.
var classAlgs = map[Class][]Algorithm{
	ClassIdentity: {AlgHybrid, AlgEd25519, AlgCheckpointEd25519, AlgCheckpointMLDSA44},
	ClassKEM:      {AlgXWing},
	ClassSession:  {AlgAES256GCM},
	ClassBinding:  {AlgP256},
}

// Allowed reports whether class c may hold algorithm a.
func Allowed(c Class, a Algorithm) bool {
	for _, x := range classAlgs[c] {
		if x == a {
			return true
		}
	}
	return false
}

// Policy is the wire form of policy.Requirements.
type Policy struct {
	Unlocked          bool     `cbor:"1,keyasint,omitempty"`
	AuthWithinSec     uint32   `cbor:"2,keyasint,omitempty"`
	AuthMethods       []string `cbor:"3,keyasint,omitempty"`
	AppAuthorized     bool     `cbor:"4,keyasint,omitempty"`
	Associated        bool     `cbor:"5,keyasint,omitempty"`
	MinPosture        uint8    `cbor:"6,keyasint,omitempty"`
	OSTrust           bool     `cbor:"7,keyasint,omitempty"`
	Attestation       bool     `cbor:"8,keyasint,omitempty"`
	AttestationMaxSec uint32   `cbor:"9,keyasint,omitempty"`
}

// FromRequirements converts to the wire form (durations in whole seconds,
// rounded up so a requirement is never loosened).
func FromRequirements(r policy.Requirements) Policy {
	return Policy{
		Unlocked: r.Unlocked, AuthWithinSec: secs(r.AuthWithin), AuthMethods: r.AuthMethods,
		AppAuthorized: r.AppAuthorized, Associated: r.Associated, MinPosture: uint8(r.MinPosture),
		OSTrust: r.OSTrust, Attestation: r.Attestation, AttestationMaxSec: secs(r.AttestationMaxAge),
	}
}

func secs(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > 1<<31 {
		s = 1 << 31
	}
	return uint32(s)
}

// Requirements converts back.
func (p Policy) Requirements() policy.Requirements {
	return policy.Requirements{
		Unlocked: p.Unlocked, AuthWithin: time.Duration(p.AuthWithinSec) * time.Second,
		AuthMethods: p.AuthMethods, AppAuthorized: p.AppAuthorized, Associated: p.Associated,
		MinPosture: policy.PostureLevel(p.MinPosture), OSTrust: p.OSTrust, Attestation: p.Attestation,
		AttestationMaxAge: time.Duration(p.AttestationMaxSec) * time.Second,
	}
}

func (p *Policy) validate() error {
	if p.MinPosture > uint8(policy.PostureTrusted) {
		return fmt.Errorf("posture minimum %d unknown", p.MinPosture)
	}
	if len(p.AuthMethods) > MaxMethods {
		return fmt.Errorf("%d authentication methods, limit %d", len(p.AuthMethods), MaxMethods)
	}
	for _, m := range p.AuthMethods {
		if len(m) == 0 || len(m) > MaxMethodLen {
			return fmt.Errorf("authentication method name of %d bytes", len(m))
		}
	}
	return nil
}

// Meta is a record's metadata: everything but the sealed material. Times are
// Unix milliseconds.
type Meta struct {
	Version     uint8     `cbor:"1,keyasint"`
	ID          []byte    `cbor:"2,keyasint"`
	Class       Class     `cbor:"3,keyasint"`
	Alg         Algorithm `cbor:"4,keyasint"`
	State       uint8     `cbor:"5,keyasint"`
	Policy      Policy    `cbor:"6,keyasint"`
	Device      []byte    `cbor:"7,keyasint"`
	Created     int64     `cbor:"8,keyasint"`
	Changed     int64     `cbor:"9,keyasint"`
	Cause       uint8     `cbor:"10,keyasint"`
	GraceUntil  int64     `cbor:"11,keyasint,omitempty"`
	Expires     int64     `cbor:"12,keyasint,omitempty"`
	Public      []byte    `cbor:"13,keyasint"`
	Predecessor []byte    `cbor:"14,keyasint,omitempty"`
	Successor   []byte    `cbor:"15,keyasint,omitempty"`
	// Resident is the backend's non-secret handle data for a key that
	// lives in hardware (binding key).
	Resident []byte `cbor:"16,keyasint,omitempty"`
}

// Lifecycle returns the lifecycle view of the metadata.
func (m *Meta) Lifecycle() lifecycle.Key {
	k := lifecycle.Key{
		State: lifecycle.State(m.State), Cause: lifecycle.Cause(m.Cause),
		Created: ms(m.Created), Changed: ms(m.Changed),
	}
	if m.GraceUntil != 0 {
		k.GraceUntil = ms(m.GraceUntil)
	}
	return k
}

// SetLifecycle stores k into the metadata.
func (m *Meta) SetLifecycle(k lifecycle.Key) {
	m.State, m.Cause = uint8(k.State), uint8(k.Cause)
	m.Created, m.Changed = k.Created.UnixMilli(), k.Changed.UnixMilli()
	m.GraceUntil = 0
	if !k.GraceUntil.IsZero() {
		m.GraceUntil = k.GraceUntil.UnixMilli()
	}
}

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

// Time converts a stored millisecond time.
func Time(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return ms(v)
}

// Validate checks the metadata's internal consistency.
func (m *Meta) Validate() error {
	switch {
	case m.Version != Version:
		return fmt.Errorf("format version %d, want %d", m.Version, Version)
	case len(m.ID) != IDSize || len(m.Device) != IDSize:
		return errors.New("key or device id of the wrong size")
	case !m.Class.Valid():
		return fmt.Errorf("unknown class %d", m.Class)
	case !Allowed(m.Class, m.Alg):
		return fmt.Errorf("algorithm %v not allowed for class %v", m.Alg, m.Class)
	case !lifecycle.State(m.State).Valid():
		return fmt.Errorf("unknown lifecycle state %d", m.State)
	case !lifecycle.Cause(m.Cause).Valid():
		return fmt.Errorf("unknown lifecycle cause %d", m.Cause)
	case m.Changed < m.Created:
		return errors.New("changed before created")
	case len(m.Public) == 0 && m.Alg != AlgAES256GCM:
		return errors.New("missing public key")
	case len(m.Public) > MaxPublicSize:
		return errors.New("public key too large")
	case len(m.Resident) > MaxBlobSize:
		return errors.New("resident key handle too large")
	case (m.Alg == AlgP256) != (len(m.Resident) > 0):
		return errors.New("resident handle present exactly when the key lives in hardware")
	case len(m.Predecessor) != 0 && len(m.Predecessor) != IDSize, len(m.Successor) != 0 && len(m.Successor) != IDSize:
		return errors.New("predecessor or successor id of the wrong size")
	case lifecycle.State(m.State) == lifecycle.Superseded && m.GraceUntil == 0:
		return errors.New("superseded without a grace period")
	}
	return m.Policy.validate()
}

// Record is the stored form of a key.
type Record struct {
	Meta   []byte `cbor:"1,keyasint"`
	Nonce  []byte `cbor:"2,keyasint,omitempty"`
	Sealed []byte `cbor:"3,keyasint,omitempty"`
}

// AD returns the AEAD additional data for meta bytes.
func AD(meta []byte) []byte {
	return append([]byte("enigm/v1/record\x00"), meta...)
}

// Decoded is a parsed record.
type Decoded struct {
	Meta   Meta
	Raw    Record
	Sealed bool // carries sealed material (not just a tag)
}

// ErrFormat reports a record, header or device entry that does not parse or
// validate.
var ErrFormat = errors.New("record: malformed")

// Parse decodes and validates a stored record.
func Parse(b []byte) (*Decoded, error) {
	var d Decoded
	if err := wire.Unmarshal(b, &d.Raw, MaxRecordSize); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if err := wire.Unmarshal(d.Raw.Meta, &d.Meta, MaxRecordSize); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrFormat, err)
	}
	if err := d.Meta.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	holds := lifecycle.State(d.Meta.State).HoldsMaterial()
	soft := d.Meta.Alg.SeedSize() > 0
	switch {
	case len(d.Raw.Nonce) != 0 && len(d.Raw.Nonce) != NonceSize:
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrFormat, len(d.Raw.Nonce))
	case (len(d.Raw.Nonce) == 0) != (len(d.Raw.Sealed) == 0):
		return nil, fmt.Errorf("%w: nonce and sealed data must come together", ErrFormat)
	case holds && soft && len(d.Raw.Sealed) != d.Meta.Alg.SeedSize()+TagSize:
		return nil, fmt.Errorf("%w: a %v key in state %v must carry %d sealed bytes, has %d", ErrFormat,
			d.Meta.Alg, lifecycle.State(d.Meta.State), d.Meta.Alg.SeedSize()+TagSize, len(d.Raw.Sealed))
	case (!holds || !soft) && len(d.Raw.Sealed) != 0 && len(d.Raw.Sealed) != TagSize:
		return nil, fmt.Errorf("%w: a key without software material carries %d sealed bytes", ErrFormat, len(d.Raw.Sealed))
	}
	d.Sealed = holds && soft
	return &d, nil
}

// Encode encodes meta and returns (meta bytes, error).
func EncodeMeta(m *Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return wire.Marshal(m)
}

// Encode encodes a record.
func Encode(r *Record) ([]byte, error) { return wire.Marshal(r) }

// Header is the store header, written once at init.
type Header struct {
	Version  uint8            `cbor:"1,keyasint"`
	Device   []byte           `cbor:"2,keyasint"`
	Created  int64            `cbor:"3,keyasint"`
	Backend  string           `cbor:"4,keyasint"`
	State    []byte           `cbor:"5,keyasint"`
	Level    string           `cbor:"6,keyasint"`
	SealedKE map[Class][]byte `cbor:"7,keyasint"` // class -> backend-sealed wrapping key
}

// Validate checks the header.
func (h *Header) Validate() error {
	switch {
	case h.Version != Version:
		return fmt.Errorf("header format version %d, want %d", h.Version, Version)
	case len(h.Device) != IDSize:
		return errors.New("device id of the wrong size")
	case h.Backend == "" || len(h.Backend) > 32:
		return errors.New("backend name missing or too long")
	case len(h.State) > MaxBlobSize:
		return errors.New("backend state too large")
	case len(h.Level) == 0 || len(h.Level) > 32:
		return errors.New("protection level missing or too long")
	}
	for _, c := range []Class{ClassIdentity, ClassKEM, ClassSession, ClassBinding} {
		if len(h.SealedKE[c]) == 0 || len(h.SealedKE[c]) > MaxBlobSize {
			return fmt.Errorf("sealed wrapping key for class %v missing or too large", c)
		}
	}
	if len(h.SealedKE) != 4 {
		return errors.New("sealed wrapping keys for unknown classes")
	}
	return nil
}

// ParseHeader decodes and validates a header.
func ParseHeader(b []byte) (*Header, error) { return parseValid[Header](b, MaxHeaderSize, "header") }

// Device is the mutable device-state entry.
type Device struct {
	Version     uint8  `cbor:"1,keyasint"`
	Association uint8  `cbor:"2,keyasint"`
	Revoked     int64  `cbor:"3,keyasint,omitempty"` // revocation time, 0 if not revoked
	Account     []byte `cbor:"4,keyasint,omitempty"`
	// Overlay holds organisation tightening per class.
	Overlay map[Class]Policy `cbor:"5,keyasint,omitempty"`
}

// Validate checks the device entry.
func (d *Device) Validate() error {
	switch {
	case d.Version != Version:
		return fmt.Errorf("device entry version %d, want %d", d.Version, Version)
	case d.Association > uint8(policy.Associated):
		return fmt.Errorf("unknown association state %d", d.Association)
	case len(d.Account) > 64:
		return errors.New("account id too long")
	case d.Revoked < 0:
		return errors.New("negative revocation time")
	}
	for c, p := range d.Overlay {
		if !c.Valid() {
			return fmt.Errorf("policy overlay for unknown class %d", c)
		}
		if err := p.validate(); err != nil {
			return err
		}
	}
	return nil
}

// ParseDevice decodes and validates a device entry.
func ParseDevice(b []byte) (*Device, error) {
	return parseValid[Device](b, MaxDeviceSize, "device entry")
}

// parseValid decodes b strictly (at most max bytes) into a new T and
// validates it; either failure is ErrFormat naming what.
func parseValid[T any, P interface {
	*T
	Validate() error
}](b []byte, max int, what string) (*T, error) {
	v := new(T)
	err := wire.Unmarshal(b, v, max)
	if err == nil {
		err = P(v).Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
	}
	return v, nil
}
