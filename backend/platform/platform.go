// Package platform is the phone backend: it implements [backend.Backend]
// over a [bridge.Hardware] that an iOS or Android app implements natively
// over the Secure Enclave, StrongBox or the TEE.
//
// # How wrapping keys are sealed
//
// Each store (one Provision) has one hardware "store key" and seals every
// secret in two layers:
//
//	inner: AES-256-GCM under a key derived from the unlock secret
//	       (Argon2id, then HKDF), in software
//	outer: protected by the store key, chosen from what the bridge reports
//	       it can do (bridge.Info), never from the platform's name:
//	  AES  (Info.AES)   the hardware encrypts with an AES-256-GCM key it holds
//	                    (StrongBox, TEE)
//	  ECIES (Info.Agree, no AES) software encrypts to the store key's public
//	                    half: ephemeral P-256 ECDH, HKDF-SHA256, AES-256-GCM
//	                    with the label in the additional data; unsealing
//	                    needs the hardware to compute the ECDH secret again
//	                    (Secure Enclave, which has no AES)
//
// The outer layer is the hardware's: a copy of the store on another device,
// or on this one while a gate is closed, opens nothing, and guessing the
// unlock secret needs the hardware to strip the outer layer first. The inner
// layer makes the unlock secret necessary too; the hardware does not
// rate-limit guesses of it, so this backend does not report the
// unlock_secret gate.
//
// # Gates
//
// The hardware keys (store key and binding keys) are generated with the
// access control of [Options]: unlocked-device-only (iOS data protection
// class WhenUnlocked, Android setUnlockedDeviceRequired) and optionally user
// authentication (biometric and/or device credential, per use or within a
// validity window). The backend reports device_unlocked and user_presence
// only when they are requested and the bridge says the hardware can enforce
// them, plus non_exportable and destroy for every hardware level. A refusal
// by the hardware is a [*backend.GateError] naming the gate; a key made
// permanently unusable (biometric enrolment changed) is [ErrKeyInvalidated],
// which matches backend.ErrDestroyed.
//
// # Binding key and attestation
//
// When the bridge can sign (Info.Sign) the session implements
// [backend.BindingKeys]: a P-256 signing key generated in the hardware. When
// it can also attest (Info.Attestation) the session implements
// [backend.Attester]; see [VerifyEvidence].
//
// docs/design/platforms.md describes the bridge, the formats and what each
// platform enforces.
package platform

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/internal/wire"
)

// Name is the backend name recorded in a keystore's header.
const Name = "platform"

// MaxSealSize is the largest secret Seal accepts.
const MaxSealSize = 1024

// maxValidity bounds an authentication validity window (one day).
const maxValidity = 24 * 60 * 60

// Errors of this backend (besides the backend package's).
var (
	// ErrKeyInvalidated: a hardware key is permanently unusable because
	// the biometric enrolment changed or the device passcode was removed.
	// It matches backend.ErrDestroyed: the store must be recovered.
	ErrKeyInvalidated = fmt.Errorf("platform: hardware key permanently invalidated (biometric enrolment or passcode changed): %w", backend.ErrDestroyed)
	// ErrUnsupported: the platform cannot do what the options ask.
	ErrUnsupported = fmt.Errorf("platform: not supported by this hardware: %w", backend.ErrUnavailable)
)

// Options configure the backend. The zero value asks for keys usable only
// while the device is unlocked, without user authentication, with the
// unlock secret stretched by Argon2id at RFC 9106's second recommended
// parameters.
type Options struct {
	// KDF: Argon2id parameters for new stores; zero means
	// soft.Recommended(). Lower them only for a high-entropy secret the
	// app generates and keeps in protected storage, or in tests.
	KDF soft.Params
	// AllowLocked: keys stay usable while the device is locked (iOS
	// AfterFirstUnlock); the device_unlocked gate is then not reported.
	AllowLocked bool
	// UserAuth: kinds of user authentication (bridge.Auth bits) every
	// hardware key requires; 0 for none.
	UserAuth int
	// AuthValidity: with UserAuth, how long one authentication allows
	// use; 0 means every use needs its own authentication. Whole seconds.
	AuthValidity time.Duration
}

// Backend is the platform backend over one bridge.
type Backend struct {
	br     bridge.Hardware
	info   bridge.Info
	scheme uint8
	kdf    kdfParams
	access access
	caps   backend.Capabilities
}

var _ backend.Backend = (*Backend)(nil)

// New asks the bridge what the hardware can do (bridge.Info) and returns a
// backend over it. It fails when the hardware can neither encrypt nor
// agree keys, or cannot enforce what opts ask for.
func New(br bridge.Hardware, opts Options) (*Backend, error) {
	if br == nil {
		return nil, fmt.Errorf("%w: no bridge", backend.ErrUnavailable)
	}
	ip, err := br.Info()
	if err != nil {
		return nil, bridgeErr("Info", err)
	}
	if ip == nil {
		return nil, fmt.Errorf("%w: the bridge returned no Info", backend.ErrHardwareFault)
	}
	info := *ip
	if !hardwareLevel(info.SecurityLevel) && info.SecurityLevel != bridge.LevelSoftware {
		return nil, fmt.Errorf("%w: the bridge reports an unknown security level %q", backend.ErrUnavailable, info.SecurityLevel)
	}
	b := &Backend{br: br, info: info}
	switch {
	case info.AES:
		b.scheme = schemeAES
	case info.Agree:
		b.scheme = schemeECIES
	default:
		return nil, fmt.Errorf("%w: the hardware can neither encrypt (AES-256-GCM) nor agree keys (ECDH P-256)", ErrUnsupported)
	}
	p := opts.KDF
	if p == (soft.Params{}) {
		p = soft.Recommended()
	}
	b.kdf = kdfParams(p)
	if err := b.kdf.check(); err != nil {
		return nil, err
	}
	if opts.UserAuth < 0 || opts.UserAuth > bridge.AuthBiometric|bridge.AuthDeviceCredential {
		return nil, fmt.Errorf("platform: unknown authentication kinds %d", opts.UserAuth)
	}
	if opts.UserAuth&^info.UserAuth != 0 {
		return nil, fmt.Errorf("%w: keys cannot require authentication kinds %d (hardware offers %d)", ErrUnsupported, opts.UserAuth, info.UserAuth)
	}
	if opts.AuthValidity < 0 || opts.AuthValidity%time.Second != 0 || opts.AuthValidity > maxValidity*time.Second {
		return nil, fmt.Errorf("platform: authentication validity %v must be whole seconds between 0 and %ds", opts.AuthValidity, maxValidity)
	}
	secs := int64(opts.AuthValidity / time.Second)
	if opts.UserAuth != 0 && secs > info.MaxAuthValiditySeconds {
		return nil, fmt.Errorf("%w: authentication validity %ds exceeds the hardware's %ds", ErrUnsupported, secs, info.MaxAuthValiditySeconds)
	}
	if opts.UserAuth == 0 {
		secs = 0
	}
	if !opts.AllowLocked && !info.UnlockedOnly {
		return nil, fmt.Errorf("%w: keys cannot be restricted to an unlocked device (set AllowLocked to accept that)", ErrUnsupported)
	}
	b.access = access{UnlockedOnly: !opts.AllowLocked, Auth: int64(opts.UserAuth), ValiditySecs: secs}
	if info.DataProtection {
		b.access.DataProtection = bridge.ProtectionWhenUnlocked
		if opts.AllowLocked {
			b.access.DataProtection = bridge.ProtectionAfterFirstUnlock
		}
	}
	b.caps = b.capabilities()
	return b, nil
}

func hardwareLevel(l string) bool {
	return l == bridge.LevelSecureEnclave || l == bridge.LevelStrongBox || l == bridge.LevelTEE
}

// capabilities derives what the backend reports from the bridge's Info and
// the access control the options ask for.
func (b *Backend) capabilities() backend.Capabilities {
	c := backend.Capabilities{Name: Name, Level: backend.LevelSoftware, MaxSealSize: MaxSealSize}
	if b.info.Sign {
		c.Resident = append(c.Resident, backend.AlgP256)
	}
	if b.info.AES {
		c.Resident = append(c.Resident, backend.AlgAES256)
	}
	if !hardwareLevel(b.info.SecurityLevel) {
		return c // keys in OS software: nothing is enforced by hardware
	}
	c.Level = backend.LevelHardwarePlatform
	c.HardwareGates = []backend.Gate{backend.GateNonExportable, backend.GateDestroy}
	if b.access.UnlockedOnly {
		c.HardwareGates = append(c.HardwareGates, backend.GateDeviceUnlocked)
	}
	if b.access.Auth != 0 {
		c.HardwareGates = append(c.HardwareGates, backend.GateUserPresence)
	}
	if b.info.Attestation == bridge.AttestationAndroidKey && b.info.Sign {
		c.Attestation = []string{EvidenceAndroidKey}
	}
	return c
}

// Capabilities reports what the backend does; it does not call the bridge.
func (b *Backend) Capabilities() backend.Capabilities {
	c := b.caps
	c.Resident = append([]string(nil), c.Resident...)
	c.HardwareGates = append([]backend.Gate(nil), c.HardwareGates...)
	c.Attestation = append([]string(nil), c.Attestation...)
	return c
}

// Info returns what the bridge reported at New.
func (b *Backend) Info() bridge.Info { return b.info }

// spec returns a key spec with the backend's access control.
func (b *Backend) spec(alias, alg string) *bridge.KeySpec {
	return &bridge.KeySpec{Alias: alias, Algorithm: alg, UnlockedOnly: b.access.UnlockedOnly,
		Auth: int(b.access.Auth), AuthValiditySeconds: b.access.ValiditySecs, DataProtection: b.access.DataProtection}
}

// checkKey checks what GenerateKey or KeyInfo returned.
func (b *Backend) checkKey(k *bridge.Key, alias, alg string) error {
	switch {
	case k == nil:
		return fmt.Errorf("%w: the bridge returned no key", backend.ErrHardwareFault)
	case k.Alias != alias || k.Algorithm != alg:
		return fmt.Errorf("%w: the bridge returned key %q (%s), want %q (%s)", backend.ErrHardwareFault, k.Alias, k.Algorithm, alias, alg)
	case k.SecurityLevel != b.info.SecurityLevel:
		return fmt.Errorf("%w: the key's security level is %q, the platform reported %q", backend.ErrHardwareFault, k.SecurityLevel, b.info.SecurityLevel)
	}
	if alg == bridge.AlgP256 {
		if _, err := parsePoint(k.PublicKey); err != nil {
			return fmt.Errorf("%w: the key's public key: %v", backend.ErrHardwareFault, err)
		}
	} else if len(k.PublicKey) != 0 {
		return fmt.Errorf("%w: an AES key with a public key", backend.ErrHardwareFault)
	}
	return nil
}

// Provision generates the store key in the hardware and the check value.
func (b *Backend) Provision(ctx context.Context, secret []byte) (out []byte, err error) {
	if len(secret) == 0 {
		return nil, errors.New("platform: the unlock secret must not be empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &state{Version: stateVersion, Scheme: b.scheme, StoreID: make([]byte, storeIDSize), Level: b.info.SecurityLevel,
		Time: b.kdf.Time, MemoryKiB: b.kdf.MemoryKiB, Threads: b.kdf.Threads, Salt: make([]byte, saltSize), Access: b.access}
	rand.Read(s.StoreID)
	rand.Read(s.Salt)
	alias := storeAlias(s.StoreID)
	spec := b.spec(alias, bridge.AlgAES256)
	spec.Encrypt = true
	if b.scheme == schemeECIES {
		spec = b.spec(alias, bridge.AlgP256)
		spec.Agree = true
	}
	k, err := b.br.GenerateKey(spec)
	if err != nil {
		return nil, bridgeErr("generating the store key", err)
	}
	defer func() {
		if err != nil {
			b.br.DeleteKey(alias)
		}
	}()
	if err := b.checkKey(k, alias, spec.Algorithm); err != nil {
		return nil, err
	}
	if b.scheme == schemeECIES {
		s.StorePub = append([]byte(nil), k.PublicKey...)
	}
	keys, err := deriveKeys(secret, s)
	if err != nil {
		return nil, err
	}
	defer keys.clear()
	sess := &session{b: b, st: s, keys: keys}
	if s.Check, err = sess.seal(ctx, checkLabel, checkPlain, s.commitment()); err != nil {
		return nil, err
	}
	return wire.Marshal(s)
}

// Open parses the state, derives the secret's keys and proves them on the
// check value, which needs the hardware (and its gates).
func (b *Backend) Open(ctx context.Context, stateBytes, secret []byte) (backend.Session, error) {
	s, err := parseState(stateBytes)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case s.Scheme == schemeAES && !b.info.AES, s.Scheme == schemeECIES && !b.info.Agree:
		return nil, fmt.Errorf("%w: the store was sealed with scheme %d, which this hardware cannot open", ErrUnsupported, s.Scheme)
	case s.Level != b.info.SecurityLevel:
		return nil, fmt.Errorf("%w: the store was provisioned at security level %q, the hardware now reports %q", backend.ErrState, s.Level, b.info.SecurityLevel)
	case s.Access != b.access:
		return nil, fmt.Errorf("%w: the store's keys were generated with other access control than these options ask for (%+v, want %+v)", backend.ErrState, s.Access, b.access)
	}
	keys, err := deriveKeys(secret, s)
	if err != nil {
		return nil, err
	}
	sess := &session{b: b, st: s, keys: keys}
	pt, err := sess.unseal(ctx, checkLabel, s.Check, s.commitment())
	if err != nil {
		keys.clear()
		if errors.Is(err, errInner) {
			return nil, backend.ErrBadSecret
		}
		return nil, err
	}
	clear(pt)
	return sess.public(), nil
}

// Destroy deletes every hardware key of the store. It needs no secret, and
// the hardware's gates do not apply to deleting keys.
func (b *Backend) Destroy(ctx context.Context, stateBytes []byte) error {
	s, err := parseState(stateBytes)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := b.br.DeleteKeys(storePrefix(s.StoreID)); err != nil {
		return bridgeErr("deleting the store's keys", err)
	}
	return nil
}

// bridgeErr maps a bridge error to the backend's sentinels.
func bridgeErr(op string, err error) error {
	detail := err.Error()
	switch bridge.RefusalCode(err) {
	case bridge.CodeDeviceLocked:
		return fmt.Errorf("platform: %s: %w", op, &backend.GateError{Gate: backend.GateDeviceUnlocked, Detail: "the device is locked: " + detail})
	case bridge.CodeAuthRequired:
		return fmt.Errorf("platform: %s: %w", op, &backend.GateError{Gate: backend.GateUserPresence, Detail: "user authentication required: " + detail})
	case bridge.CodeKeyInvalidated:
		return fmt.Errorf("%w: %s: %s", ErrKeyInvalidated, op, detail)
	case bridge.CodeKeyNotFound:
		return fmt.Errorf("%w: %s: the hardware key is gone: %s", backend.ErrDestroyed, op, detail)
	case bridge.CodeBadData:
		return fmt.Errorf("%w: %s: %s", backend.ErrSealedData, op, detail)
	case bridge.CodeUnsupported:
		return fmt.Errorf("%w: %s: %s", ErrUnsupported, op, detail)
	}
	return fmt.Errorf("%w: %s: %s", backend.ErrUnavailable, op, detail)
}
