// Package mobile exposes the Enigm keystore to iOS and Android apps through
// `gomobile bind` (bind it together with backend/platform/bridge):
//
//	gomobile bind -target=ios ./mobile ./backend/platform/bridge
//	gomobile bind -target=android ./mobile ./backend/platform/bridge
//
// The app implements [bridge.Hardware] natively over the Secure Enclave or
// Android Keystore/StrongBox and hands it to [Init] or [Open]; everything
// else is Go. Only gomobile-compatible types cross the boundary: signed
// integers, bool, string, []byte, pointers to this package's structs, the
// bridge interface and errors. Lists are JSON strings or indexed accessors.
// mobile/gomobile_test.go checks the exported API with go/types;
// mobile/gobind_test.go runs gobind on it and compiles the Java.
//
// No function returns private key bytes: keys are used through Sign,
// KEMOpen and BindingSign, each decided by the keystore's policy and
// written to its audit log. Sign and BindingSign sign application purposes
// only (context "enigm/v1/app/<purpose>"), never a chain link, envelope or
// login; KEMOpen opens application data sealed with SealTo, never a
// message or call key (those open only into keystore handles).
//
// # Errors
//
// Every error's message starts with "enigm/<code>: " ([ErrorCode] returns
// the code), so that an app can branch on it after the error has crossed
// into Swift or Kotlin as a message: CodeDenied (followed by the reason
// codes in brackets), CodeLocked, CodeBadSecret, CodeDeviceLocked,
// CodeAuthRequired, CodeKeyInvalidated, CodeDestroyed, CodeRevoked,
// CodeNotFound, CodeCorrupt, CodeUnsupported, CodeUnavailable, CodeFailed.
//
// # Device lock
//
// The app reports the device's lock state with SetDeviceLocked (iOS:
// protectedDataWillBecomeUnavailable / DidBecomeAvailable; Android:
// ACTION_SCREEN_OFF and ACTION_USER_PRESENT). Unless Config.AllowLocked is
// set, a locked device locks the keystore: wrapping keys and unwrapped keys
// are dropped, and the hardware refuses to unseal them again until the
// device is unlocked. CheckHardware asks the hardware directly (call it
// when the app returns to the foreground).
package mobile

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Config configures the platform backend. Create it with NewConfig and
// change fields before Init or Open; Open must use the access control the
// store was created with.
type Config struct {
	// UserAuth: user authentication kinds (bridge.AuthBiometric,
	// bridge.AuthDeviceCredential, or both OR-ed) the hardware keys
	// require; 0 for none.
	UserAuth int
	// AuthValiditySeconds: how long one authentication allows hardware
	// use; 0 means every use needs its own authentication.
	AuthValiditySeconds int64
	// AllowLocked: keys stay usable while the device is locked (iOS
	// AfterFirstUnlock), and SetDeviceLocked(true) does not lock the
	// keystore. The device_unlocked gate is then not enforced.
	AllowLocked bool
	// Argon2id parameters for the unlock secret; 0 means RFC 9106's
	// second recommendation (t=3, 64 MiB, p=4). Lower them only for a
	// high-entropy secret the app generates and keeps in the Keychain or
	// Keystore.
	KDFTime      int
	KDFMemoryKiB int
	KDFThreads   int
}

// NewConfig returns the default configuration: hardware keys usable only
// while the device is unlocked and within 60 seconds of a biometric or
// device-credential authentication.
func NewConfig() *Config {
	return &Config{UserAuth: bridge.AuthBiometric | bridge.AuthDeviceCredential, AuthValiditySeconds: 60}
}

func (c *Config) options() (platform.Options, error) {
	if c == nil {
		c = NewConfig()
	}
	if c.KDFTime < 0 || c.KDFMemoryKiB < 0 || c.KDFThreads < 0 || c.KDFTime > 1<<16 || c.KDFMemoryKiB > 1<<30 || c.KDFThreads > 255 {
		return platform.Options{}, fail(CodeUnsupported, errors.New("KDF parameters out of range"))
	}
	if c.AuthValiditySeconds < 0 || c.AuthValiditySeconds > 1<<31 {
		return platform.Options{}, fail(CodeUnsupported, errors.New("authentication validity out of range"))
	}
	o := platform.Options{AllowLocked: c.AllowLocked, UserAuth: c.UserAuth,
		AuthValidity: time.Duration(c.AuthValiditySeconds) * time.Second}
	if c.KDFTime != 0 || c.KDFMemoryKiB != 0 || c.KDFThreads != 0 {
		o.KDF = soft.Params{Time: uint32(c.KDFTime), MemoryKiB: uint32(c.KDFMemoryKiB), Threads: uint8(c.KDFThreads)}
	}
	return o, nil
}

// Keystore is an open keystore. It is safe for concurrent use.
type Keystore struct {
	s           *storeRef
	be          *platform.Backend
	posture     *appPosture
	allowLocked bool
}

// storeRef holds the store one pointer away from Keystore, so that fmt,
// which prints the fields of a pointee for %s or %q, shows Keystore's
// fields as addresses and never the store's wrapping keys (Keystore cannot
// have a Format method: gomobile binds no fmt.State). internal/redact's
// table checks it.
type storeRef struct{ *keystore.Store }

// appPosture is the OS posture as the app reports it.
type appPosture struct {
	p atomic.Pointer[policy.Posture]
}

func (a *appPosture) Posture() policy.Posture {
	if p := a.p.Load(); p != nil {
		return *p
	}
	return policy.Posture{Level: policy.PostureUnknown}
}

func open(hw bridge.Hardware, cfg *Config) (*platform.Backend, keystore.Options, *appPosture, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, keystore.Options{}, nil, err
	}
	be, err := platform.New(hw, opts)
	if err != nil {
		return nil, keystore.Options{}, nil, fail(codeOf(err), err)
	}
	pos := &appPosture{}
	ko := keystore.Options{
		Backend: func(name string) (backend.Backend, error) {
			if name != platform.Name {
				return nil, fmt.Errorf("%w: this store needs the %q backend, not available in the app", backend.ErrUnavailable, name)
			}
			return be, nil
		},
		Posture: pos,
		// Posture comes from the app; no need to poll it often.
		PostureRefresh: time.Minute,
	}
	return be, ko, pos, nil
}

// Init creates a keystore in home (a directory private to the app) over
// the hardware behind hw, protected by secret, and returns it unlocked.
// The caller keeps ownership of secret.
func Init(home string, hw bridge.Hardware, secret []byte, cfg *Config) (*Keystore, error) {
	be, ko, pos, err := open(hw, cfg)
	if err != nil {
		return nil, err
	}
	s, err := keystore.Init(context.Background(), home, be, secret, keystore.InitOptions{Options: ko})
	if err != nil {
		return nil, fail(codeOf(err), err)
	}
	return &Keystore{s: &storeRef{s}, be: be, posture: pos, allowLocked: cfg != nil && cfg.AllowLocked}, nil
}

// Open opens the keystore in home, locked.
func Open(home string, hw bridge.Hardware, cfg *Config) (*Keystore, error) {
	be, ko, pos, err := open(hw, cfg)
	if err != nil {
		return nil, err
	}
	s, err := keystore.Open(home, ko)
	if err != nil {
		return nil, fail(codeOf(err), err)
	}
	return &Keystore{s: &storeRef{s}, be: be, posture: pos, allowLocked: cfg != nil && cfg.AllowLocked}, nil
}

// Exists reports whether home holds a keystore.
func Exists(home string) bool { return keystore.Exists(home) }

// Unlock opens the hardware with secret and brings the wrapping keys into
// memory. The hardware may prompt for (or require a recent) user
// authentication. The caller keeps ownership of secret.
func (k *Keystore) Unlock(secret []byte) error {
	return wrap(k.s.Unlock(context.Background(), secret))
}

// Lock forgets the wrapping keys and every unwrapped key.
func (k *Keystore) Lock() error { return wrap(k.s.Lock()) }

// Close locks and releases the keystore.
func (k *Keystore) Close() error { return wrap(k.s.Close()) }

// UserAuthenticated records that the app authenticated the user (method:
// "biometric", "device_credential", "passphrase") just now. Key policies
// that require a recent authentication read it.
func (k *Keystore) UserAuthenticated(method string) { k.s.Authenticate(method) }

// SetAppAuthorized records whether the app session is signed in and its
// app lock passed.
func (k *Keystore) SetAppAuthorized(ok bool) { k.s.SetAppAuthorized(ok) }

// SetPosture records the OS security posture as the app observes it:
// level "trusted", "degraded", "compromised" or "unknown", and facts, a
// comma-separated list of short observations ("jailbroken", "debugger",
// "patch_level=2025-01", …).
func (k *Keystore) SetPosture(level, facts string) error {
	l, ok := policy.ParsePostureLevel(level)
	if !ok {
		return fail(CodeUnsupported, fmt.Errorf("unknown posture level %q", level))
	}
	p := policy.Posture{Level: l}
	for _, f := range strings.Split(facts, ",") {
		if f = strings.TrimSpace(f); f != "" {
			p.Facts = append(p.Facts, f)
		}
	}
	k.posture.p.Store(&p)
	k.s.RefreshPosture()
	return nil
}

// SetAssociation records the device's membership in its account, as the
// device agent learns it from the verified chain: "associated",
// "pending" or "unassociated"; account is the account id.
func (k *Keystore) SetAssociation(state string, account []byte) error {
	var a policy.Association
	switch state {
	case "associated":
		a = policy.Associated
	case "pending":
		a = policy.AssociationPending
	case "unassociated":
		a = policy.Unassociated
	default:
		return fail(CodeUnsupported, fmt.Errorf("unknown association %q", state))
	}
	return wrap(k.s.SetAssociation(a, account))
}

// SetDeviceLocked reports the device's lock state. When the device locks
// the keystore locks too, unless Config.AllowLocked was set; unlocking the
// device does not unlock the keystore (call Unlock).
func (k *Keystore) SetDeviceLocked(locked bool) error {
	if !locked || k.allowLocked {
		return nil
	}
	return wrap(k.s.OnDeviceLocked())
}

// CheckHardware asks the hardware to evaluate its gates now; if it refuses
// because the device is locked or its keys were invalidated, the keystore
// locks. It costs one hardware operation.
func (k *Keystore) CheckHardware() error { return wrap(k.s.CheckHardware(context.Background())) }

// RevokeDevice destroys every key and the hardware keys: the device was
// revoked. It works while locked and cannot be undone.
func (k *Keystore) RevokeDevice(reason string) error {
	return wrap(k.s.RevokeDevice(context.Background(), reason))
}

// Status describes the keystore. It holds nothing secret.
type Status struct {
	Backend string
	// Protection: "hardware-platform" or "software".
	Protection string
	// SecurityLevel reported by the bridge: "secure_enclave",
	// "strongbox", "tee" or "software".
	SecurityLevel string
	// Gates: the gates the hardware enforces, comma-separated.
	Gates       string
	Locked      bool
	Revoked     bool
	Association string
	// DeviceID: hex.
	DeviceID string
	// Keys: number of keys by any state.
	Keys        int
	AuditIntact bool
	Posture     string
}

// Status reports the keystore's state.
func (k *Keystore) Status() (*Status, error) {
	st, err := k.s.Status()
	if err != nil {
		return nil, wrap(err)
	}
	gates := make([]string, len(st.Gates))
	for i, g := range st.Gates {
		gates[i] = string(g)
	}
	n := 0
	for _, c := range st.Keys {
		n += c
	}
	return &Status{Backend: st.Backend, Protection: string(st.Protection), SecurityLevel: k.be.Info().SecurityLevel,
		Gates: strings.Join(gates, ","), Locked: st.Locked, Revoked: st.Revoked, Association: st.Association.String(),
		DeviceID: hex.EncodeToString(st.Device[:]), Keys: n, AuditIntact: st.Audit.Intact, Posture: st.Posture.Level.String()}, nil
}

// causeOf parses a lifecycle cause name; "" means account setup.
func causeOf(name string) (lifecycle.Cause, error) {
	if name == "" {
		return lifecycle.AccountSetup, nil
	}
	c, ok := lifecycle.ParseCause(name)
	if !ok {
		return 0, fail(CodeUnsupported, fmt.Errorf("unknown lifecycle cause %q", name))
	}
	return c, nil
}
