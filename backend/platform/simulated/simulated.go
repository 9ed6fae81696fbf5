// Package simulated is a phone's secure hardware in Go, for tests: a
// [bridge.Hardware] that enforces the constraints of the real thing instead of
// pretending. Two profiles model the platforms Enigm targets:
//
//   - [SecureEnclave]: P-256 keys only (signing and key agreement; no AES, no
//     import), never exportable; iOS data-protection classes (WhenUnlocked
//     and WhenPasscodeSet keys refuse use while the device is locked,
//     AfterFirstUnlock keys until the first unlock after boot;
//     WhenPasscodeSet keys are deleted when the passcode is removed); user
//     presence per use or within a reuse window of at most 5 minutes; a
//     biometric-only key (.biometryCurrentSet) is invalidated for good when
//     the enrolled biometrics change. No key attestation.
//   - [StrongBox]: P-256 signing keys and AES-256-GCM keys only;
//     unlocked-device-required keys; keys bound to user authentication per
//     use or within a validity window; biometric-only keys invalidated by a
//     new enrolment; key attestation (a certificate chain with the Android
//     KeyDescription extension, under a simulated root); and slow: every
//     operation waits an injected delay, one operation at a time.
//
// Key material lives in unexported fields of the simulator and no method
// returns it. Test controls ([Device.Lock], [Device.Unlock],
// [Device.Authenticate], [Device.ChangeBiometrics], [Device.Advance], …)
// change the device's state the way a user or the OS would.
package simulated

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enigm/enigm/backend/platform/bridge"
)

// Profile is what a simulated platform can do.
type Profile struct {
	// Platform is reported in Info.Platform.
	Platform string
	// Level is the security level of every key.
	Level string
	// Algorithms and purposes.
	Sign, Agree, AES bool
	// UnlockedOnly: keys can be restricted to an unlocked device.
	UnlockedOnly bool
	// UserAuth: authentication kinds keys can require (bridge.Auth bits).
	UserAuth int
	// MaxAuthValidity: longest validity window after an authentication.
	MaxAuthValidity time.Duration
	// DataProtection: iOS data-protection classes decide when keys are
	// usable.
	DataProtection bool
	// Attestation: keys generated with a challenge get an attestation
	// certificate chain.
	Attestation bool
	// OpDelay is waited by every key operation (generation, use,
	// attestation), one operation at a time.
	OpDelay time.Duration
}

// SecureEnclave is the profile of Apple's Secure Enclave.
func SecureEnclave() Profile {
	return Profile{Platform: "ios-simulated", Level: bridge.LevelSecureEnclave, Sign: true, Agree: true,
		UnlockedOnly: true, UserAuth: bridge.AuthBiometric | bridge.AuthDeviceCredential,
		MaxAuthValidity: 5 * time.Minute, DataProtection: true}
}

// StrongBox is the profile of an Android StrongBox KeyMint, with delay
// waited by every key operation (real StrongBox chips take tens of
// milliseconds).
func StrongBox(delay time.Duration) Profile {
	return Profile{Platform: "android-simulated", Level: bridge.LevelStrongBox, Sign: true, AES: true,
		UnlockedOnly: true, UserAuth: bridge.AuthBiometric | bridge.AuthDeviceCredential,
		MaxAuthValidity: 24 * time.Hour, Attestation: true, OpDelay: delay}
}

// key is one hardware key. Its material never leaves the simulator.
type key struct {
	spec        bridge.KeySpec
	ec          *ecdsa.PrivateKey // P-256
	ecdh        *ecdh.PrivateKey  // the same scalar, for ECDH
	aes         cipher.AEAD       // AES-256-GCM
	bioGen      int               // biometric enrolment when created
	invalidated bool
	chain       []byte // attestation certificates, DER, leaf first
}

// Device is a simulated phone with secure hardware. It implements
// bridge.Hardware and is safe for concurrent use.
type Device struct {
	prof Profile

	op sync.Mutex // one key operation at a time, as in a secure element

	mu           sync.Mutex
	now          time.Time
	locked       bool
	sinceBoot    bool // unlocked at least once since boot
	passcode     bool
	bioGen       int
	lastAuth     time.Time
	lastAuthKind int
	oneShot      int // authentication kinds of a pending per-use authentication
	keys         map[string]*key
	delay        time.Duration

	calls atomic.Int64
	ca    *authority
}

var _ bridge.Hardware = (*Device)(nil)

// New returns a device with the profile: passcode set, unlocked, no user
// authentication yet, its clock at the current time.
func New(p Profile) *Device {
	d := &Device{prof: p, now: time.Now(), passcode: true, sinceBoot: true, keys: map[string]*key{}, delay: p.OpDelay}
	if p.Attestation {
		d.ca = newAuthority(p.Platform, d.now)
	}
	return d
}

// --- test controls -----------------------------------------------------------

// Lock locks the device (the screen locks). A pending per-use
// authentication is dropped.
func (d *Device) Lock() {
	d.mu.Lock()
	d.locked, d.oneShot = true, 0
	d.mu.Unlock()
}

// Unlock unlocks the device without authenticating the user to keys (a
// trust agent, or the test's shortcut).
func (d *Device) Unlock() {
	d.mu.Lock()
	d.locked, d.sinceBoot = false, true
	d.mu.Unlock()
}

// UnlockWith unlocks the device with an authentication of kind (as the lock
// screen does on Android: it counts for keys with a validity window).
func (d *Device) UnlockWith(kind int) {
	d.Unlock()
	d.Authenticate(kind)
}

// Locked reports whether the device is locked.
func (d *Device) Locked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

// Reboot restarts the device: locked, and not unlocked since boot.
func (d *Device) Reboot() {
	d.mu.Lock()
	d.locked, d.sinceBoot, d.oneShot, d.lastAuth = true, false, 0, time.Time{}
	d.mu.Unlock()
}

// Authenticate records a user authentication of kind
// (bridge.AuthBiometric or bridge.AuthDeviceCredential) now: it allows keys
// with a validity window until it expires, and one use of a per-use key.
func (d *Device) Authenticate(kind int) { d.AuthenticateAt(kind, d.Now()) }

// AuthenticateAt records a user authentication of kind at time t.
func (d *Device) AuthenticateAt(kind int, t time.Time) {
	d.mu.Lock()
	d.lastAuth, d.lastAuthKind, d.oneShot = t, kind, kind
	d.mu.Unlock()
}

// ChangeBiometrics enrols or removes a biometric: every key that accepts
// only biometric authentication is invalidated for good.
func (d *Device) ChangeBiometrics() {
	d.mu.Lock()
	d.bioGen++
	for _, k := range d.keys {
		if k.spec.Auth == bridge.AuthBiometric {
			k.invalidated = true
		}
	}
	d.mu.Unlock()
}

// RemovePasscode removes the device passcode: WhenPasscodeSet keys are
// deleted (iOS), and keys that need user authentication are invalidated.
func (d *Device) RemovePasscode() {
	d.mu.Lock()
	d.passcode = false
	for alias, k := range d.keys {
		if k.spec.DataProtection == bridge.ProtectionWhenPasscodeSet {
			d.deleteLocked(alias)
		} else if k.spec.Auth != 0 {
			k.invalidated = true
		}
	}
	d.mu.Unlock()
}

// Advance moves the device's clock forward.
func (d *Device) Advance(dt time.Duration) {
	d.mu.Lock()
	d.now = d.now.Add(dt)
	d.mu.Unlock()
}

// Now returns the device's clock.
func (d *Device) Now() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now
}

// SetDelay changes the per-operation delay.
func (d *Device) SetDelay(dt time.Duration) {
	d.mu.Lock()
	d.delay = dt
	d.mu.Unlock()
}

// Calls returns how many bridge calls the device has served.
func (d *Device) Calls() int64 { return d.calls.Load() }

// KeyCount returns how many keys the hardware holds.
func (d *Device) KeyCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// AttestationRoots returns the simulated attestation root (nil without
// attestation): the root a verifier trusts for this device.
func (d *Device) AttestationRoots() *x509.CertPool {
	if d.ca == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(d.ca.root)
	return p
}

// --- bridge.Hardware -----------------------------------------------------------

func refuse(code, format string, args ...any) error {
	return bridge.Refuse(code, fmt.Sprintf(format, args...))
}

// Info reports the profile.
func (d *Device) Info() (*bridge.Info, error) {
	d.calls.Add(1)
	p := d.prof
	att := ""
	if p.Attestation {
		att = bridge.AttestationAndroidKey
	}
	return &bridge.Info{Platform: p.Platform, SecurityLevel: p.Level, Sign: p.Sign, Agree: p.Agree, AES: p.AES,
		UnlockedOnly: p.UnlockedOnly, UserAuth: p.UserAuth, MaxAuthValiditySeconds: int64(p.MaxAuthValidity / time.Second),
		DataProtection: p.DataProtection, Attestation: att}, nil
}

// operate runs one key operation: the hardware's delay, one at a time.
func (d *Device) operate() func() {
	d.calls.Add(1)
	d.op.Lock()
	d.mu.Lock()
	dt := d.delay
	d.mu.Unlock()
	if dt > 0 {
		time.Sleep(dt)
	}
	return d.op.Unlock
}

// GenerateKey creates a key if the profile supports the spec.
func (d *Device) GenerateKey(spec *bridge.KeySpec) (*bridge.Key, error) {
	defer d.operate()()
	if spec == nil {
		return nil, refuse(bridge.CodeBadData, "no key spec")
	}
	s := *spec
	s.AttestationChallenge = append([]byte(nil), spec.AttestationChallenge...)
	if err := d.checkSpec(&s); err != nil {
		return nil, err
	}
	k := &key{spec: s}
	switch s.Algorithm {
	case bridge.AlgP256:
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, refuse(bridge.CodeUnavailable, "key generation: %v", err)
		}
		k.ec = ec
		if k.ecdh, err = ec.ECDH(); err != nil {
			return nil, refuse(bridge.CodeUnavailable, "key generation: %v", err)
		}
	case bridge.AlgAES256:
		raw := make([]byte, 32)
		rand.Read(raw)
		blk, _ := aes.NewCipher(raw)
		clear(raw) // the cipher keeps its own schedule; the bytes are gone
		k.aes, _ = cipher.NewGCM(blk)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.keys[s.Alias]; ok {
		return nil, refuse(bridge.CodeUnsupported, "alias %q exists", s.Alias)
	}
	k.bioGen = d.bioGen
	if len(s.AttestationChallenge) > 0 && d.prof.Attestation && s.Algorithm == bridge.AlgP256 {
		chain, err := d.ca.attest(k, d.prof.Level, d.now)
		if err != nil {
			return nil, refuse(bridge.CodeUnavailable, "attestation: %v", err)
		}
		k.chain = chain
	}
	d.keys[s.Alias] = k
	return d.describe(s.Alias, k), nil
}

// checkSpec refuses what the profile's hardware cannot do.
func (d *Device) checkSpec(s *bridge.KeySpec) error {
	p := d.prof
	switch {
	case s.Alias == "" || len(s.Alias) > 256:
		return refuse(bridge.CodeBadData, "alias of %d bytes", len(s.Alias))
	case s.Algorithm == bridge.AlgP256:
		if s.Encrypt || (!s.Sign && !s.Agree) || (s.Sign && !p.Sign) || (s.Agree && !p.Agree) {
			return refuse(bridge.CodeUnsupported, "%s cannot hold a P-256 key for sign=%v agree=%v encrypt=%v", p.Level, s.Sign, s.Agree, s.Encrypt)
		}
	case s.Algorithm == bridge.AlgAES256:
		if !p.AES || !s.Encrypt || s.Sign || s.Agree {
			return refuse(bridge.CodeUnsupported, "%s has no AES-256 encryption keys", p.Level)
		}
	default:
		return refuse(bridge.CodeUnsupported, "%s cannot hold %q keys", p.Level, s.Algorithm)
	}
	if s.UnlockedOnly && !p.UnlockedOnly {
		return refuse(bridge.CodeUnsupported, "keys cannot be bound to an unlocked device")
	}
	if s.Auth < 0 || s.Auth&^p.UserAuth != 0 {
		return refuse(bridge.CodeUnsupported, "authentication kinds %d not available", s.Auth)
	}
	if s.Auth != 0 && (s.AuthValiditySeconds < 0 || time.Duration(s.AuthValiditySeconds)*time.Second > p.MaxAuthValidity) {
		return refuse(bridge.CodeUnsupported, "authentication validity %ds exceeds %v", s.AuthValiditySeconds, p.MaxAuthValidity)
	}
	d.mu.Lock()
	passcode := d.passcode
	d.mu.Unlock()
	if (s.Auth != 0 || s.UnlockedOnly) && !passcode {
		return refuse(bridge.CodeUnsupported, "no device passcode: keys cannot require authentication or an unlocked device")
	}
	if p.DataProtection {
		switch s.DataProtection {
		case "":
			s.DataProtection = bridge.ProtectionWhenUnlocked
		case bridge.ProtectionWhenUnlocked, bridge.ProtectionWhenPasscodeSet:
		case bridge.ProtectionAfterFirstUnlock:
			if s.UnlockedOnly {
				return refuse(bridge.CodeUnsupported, "an AfterFirstUnlock key cannot be unlocked-only")
			}
		default:
			return refuse(bridge.CodeUnsupported, "unknown data protection class %q", s.DataProtection)
		}
	} else {
		s.DataProtection = ""
	}
	return nil
}

func (d *Device) describe(alias string, k *key) *bridge.Key {
	out := &bridge.Key{Alias: alias, SecurityLevel: d.prof.Level, Algorithm: k.spec.Algorithm}
	if k.ec != nil {
		out.PublicKey = k.ecdh.PublicKey().Bytes()
	}
	return out
}

// useLocking is use with d.mu taken for the checks.
func (d *Device) useLocking(alias, purpose string) (*key, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.use(alias, purpose)
}

// use finds a key and checks every gate for one use with purpose. d.mu is
// held by the caller.
func (d *Device) use(alias string, purpose string) (*key, error) {
	k, ok := d.keys[alias]
	if !ok {
		return nil, refuse(bridge.CodeKeyNotFound, "no key %q", alias)
	}
	if k.invalidated {
		return nil, refuse(bridge.CodeKeyInvalidated, "key %q was invalidated by a change of biometrics or passcode", alias)
	}
	allowed := map[string]bool{"sign": k.spec.Sign, "agree": k.spec.Agree, "encrypt": k.spec.Encrypt, "attest": k.ec != nil}[purpose]
	if !allowed {
		return nil, refuse(bridge.CodeUnsupported, "key %q is not for %s", alias, purpose)
	}
	if purpose == "attest" {
		return k, nil // reading the certificate chain is not a key use
	}
	// Device lock state: Android's unlocked-device-required, iOS data
	// protection classes.
	switch {
	case k.spec.DataProtection == bridge.ProtectionAfterFirstUnlock && !d.sinceBoot:
		return nil, refuse(bridge.CodeDeviceLocked, "not unlocked since boot")
	case (k.spec.UnlockedOnly || k.spec.DataProtection == bridge.ProtectionWhenUnlocked ||
		k.spec.DataProtection == bridge.ProtectionWhenPasscodeSet) && d.locked:
		return nil, refuse(bridge.CodeDeviceLocked, "the device is locked")
	}
	if k.spec.Auth == 0 {
		return k, nil
	}
	if k.spec.AuthValiditySeconds == 0 {
		if d.oneShot&k.spec.Auth == 0 {
			return nil, refuse(bridge.CodeAuthRequired, "this key needs an authentication for each use")
		}
		d.oneShot = 0
		return k, nil
	}
	window := time.Duration(k.spec.AuthValiditySeconds) * time.Second
	switch {
	case d.lastAuth.IsZero() || d.lastAuthKind&k.spec.Auth == 0:
		return nil, refuse(bridge.CodeAuthRequired, "no suitable user authentication")
	case d.now.Before(d.lastAuth) || d.now.Sub(d.lastAuth) > window:
		return nil, refuse(bridge.CodeAuthRequired, "the last authentication is older than %v", window)
	}
	return k, nil
}

// KeyInfo describes a key. Describing is not a use: no gate applies.
func (d *Device) KeyInfo(alias string) (*bridge.Key, error) {
	d.calls.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[alias]
	if !ok {
		return nil, refuse(bridge.CodeKeyNotFound, "no key %q", alias)
	}
	return d.describe(alias, k), nil
}

// Sign signs a SHA-256 digest.
func (d *Device) Sign(alias string, digest []byte) ([]byte, error) {
	defer d.operate()()
	k, err := d.useLocking(alias, "sign")
	if err != nil {
		return nil, err
	}
	if len(digest) != 32 {
		return nil, refuse(bridge.CodeBadData, "digest of %d bytes", len(digest))
	}
	sig, err := ecdsa.SignASN1(rand.Reader, k.ec, digest)
	if err != nil {
		return nil, refuse(bridge.CodeUnavailable, "sign: %v", err)
	}
	return sig, nil
}

// Agree computes an ECDH shared secret.
func (d *Device) Agree(alias string, peerPublic []byte) ([]byte, error) {
	defer d.operate()()
	k, err := d.useLocking(alias, "agree")
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.P256().NewPublicKey(peerPublic)
	if err != nil {
		return nil, refuse(bridge.CodeBadData, "peer public key: %v", err)
	}
	z, err := k.ecdh.ECDH(peer)
	if err != nil {
		return nil, refuse(bridge.CodeBadData, "ECDH: %v", err)
	}
	return z, nil
}

// Encrypt encrypts with AES-256-GCM under a random IV.
func (d *Device) Encrypt(alias string, plaintext, aad []byte) ([]byte, error) {
	defer d.operate()()
	k, err := d.useLocking(alias, "encrypt")
	if err != nil {
		return nil, err
	}
	iv := make([]byte, 12, 12+len(plaintext)+16)
	rand.Read(iv)
	return k.aes.Seal(iv, iv, plaintext, aad), nil
}

// Decrypt reverses Encrypt.
func (d *Device) Decrypt(alias string, sealed, aad []byte) ([]byte, error) {
	defer d.operate()()
	k, err := d.useLocking(alias, "encrypt")
	if err != nil {
		return nil, err
	}
	if len(sealed) < 12+16 {
		return nil, refuse(bridge.CodeBadData, "ciphertext too short")
	}
	pt, err := k.aes.Open(nil, sealed[:12], sealed[12:], aad)
	if err != nil {
		return nil, refuse(bridge.CodeBadData, "AES-GCM tag does not verify")
	}
	return pt, nil
}

// Attest returns the attestation chain made at generation.
func (d *Device) Attest(alias string) ([]byte, error) {
	defer d.operate()()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.prof.Attestation {
		return nil, refuse(bridge.CodeUnsupported, "%s cannot attest keys", d.prof.Level)
	}
	k, err := d.use(alias, "attest")
	if err != nil {
		return nil, err
	}
	if k.chain == nil {
		return nil, refuse(bridge.CodeUnsupported, "key %q was generated without an attestation challenge", alias)
	}
	return append([]byte(nil), k.chain...), nil
}

func (d *Device) deleteLocked(alias string) {
	if k := d.keys[alias]; k != nil {
		k.ec, k.ecdh, k.aes = nil, nil, nil
	}
	delete(d.keys, alias)
}

// DeleteKey deletes a key; a missing key is not an error. Deleting needs no
// gate.
func (d *Device) DeleteKey(alias string) error {
	d.calls.Add(1)
	d.mu.Lock()
	d.deleteLocked(alias)
	d.mu.Unlock()
	return nil
}

// DeleteKeys deletes every key whose alias starts with prefix.
func (d *Device) DeleteKeys(prefix string) (int, error) {
	d.calls.Add(1)
	if prefix == "" {
		return 0, refuse(bridge.CodeBadData, "empty prefix")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for alias := range d.keys {
		if strings.HasPrefix(alias, prefix) {
			d.deleteLocked(alias)
			n++
		}
	}
	return n, nil
}
