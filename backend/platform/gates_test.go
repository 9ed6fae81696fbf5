package platform

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
)

// The scheme follows what the bridge reports it can do, not its name.
func TestSchemeFromCapabilities(t *testing.T) {
	agreeOnly := simulated.StrongBox(0)
	agreeOnly.AES, agreeOnly.Agree = false, true
	both := simulated.StrongBox(0)
	both.Agree = true
	renamed := simulated.SecureEnclave()
	renamed.Platform = "android-strongbox" // the name must not matter
	for _, tc := range []struct {
		desc string
		p    simulated.Profile
		want uint8
	}{
		{"secure enclave: no AES", simulated.SecureEnclave(), schemeECIES},
		{"strongbox: AES", simulated.StrongBox(0), schemeAES},
		{"agree only", agreeOnly, schemeECIES},
		{"AES and agree: AES", both, schemeAES},
		{"SE named like Android", renamed, schemeECIES},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			st, err := parseState(provision(t, newBackend(t, newDevice(tc.p), withAuth)))
			if err != nil {
				t.Fatal(err)
			}
			if st.Scheme != tc.want {
				t.Fatalf("scheme %d, want %d", st.Scheme, tc.want)
			}
		})
	}
	neither := simulated.SecureEnclave()
	neither.Agree = false
	if _, err := New(newDevice(neither), withAuth); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("hardware that can neither encrypt nor agree: err = %v, want ErrUnsupported", err)
	}
}

func TestCapabilities(t *testing.T) {
	se, sb := simulated.SecureEnclave(), simulated.StrongBox(0)
	noSign := sb
	noSign.Sign = false
	sw := sb
	sw.Level = bridge.LevelSoftware
	for _, tc := range []struct {
		desc     string
		p        simulated.Profile
		opts     Options
		resident []string
		gates    []backend.Gate
		level    backend.Level
		attest   bool
	}{
		{"SE with auth", se, withAuth, []string{backend.AlgP256},
			[]backend.Gate{backend.GateNonExportable, backend.GateDestroy, backend.GateDeviceUnlocked, backend.GateUserPresence}, backend.LevelHardwarePlatform, false},
		{"SE without auth", se, Options{KDF: testkit.FastKDF}, []string{backend.AlgP256},
			[]backend.Gate{backend.GateNonExportable, backend.GateDestroy, backend.GateDeviceUnlocked}, backend.LevelHardwarePlatform, false},
		{"SE usable while locked", se, Options{KDF: testkit.FastKDF, AllowLocked: true}, []string{backend.AlgP256},
			[]backend.Gate{backend.GateNonExportable, backend.GateDestroy}, backend.LevelHardwarePlatform, false},
		{"StrongBox with auth", sb, withAuth, []string{backend.AlgP256, backend.AlgAES256},
			[]backend.Gate{backend.GateNonExportable, backend.GateDestroy, backend.GateDeviceUnlocked, backend.GateUserPresence}, backend.LevelHardwarePlatform, true},
		{"StrongBox without signing keys", noSign, withAuth, []string{backend.AlgAES256},
			[]backend.Gate{backend.GateNonExportable, backend.GateDestroy, backend.GateDeviceUnlocked, backend.GateUserPresence}, backend.LevelHardwarePlatform, false},
		{"software keystore", sw, withAuth, []string{backend.AlgP256, backend.AlgAES256}, nil, backend.LevelSoftware, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := newBackend(t, newDevice(tc.p), tc.opts).Capabilities()
			if c.Name != Name || c.Level != tc.level || !slices.Equal(c.Resident, tc.resident) || !slices.Equal(c.HardwareGates, tc.gates) {
				t.Fatalf("got %+v", c)
			}
			if c.Enforces(backend.GateUnlockSecret) {
				t.Fatal("claims unlock_secret: the hardware does not check the unlock secret")
			}
			if (len(c.Attestation) > 0) != tc.attest {
				t.Fatalf("attestation %v, want %v", c.Attestation, tc.attest)
			}
			b := newBackend(t, newDevice(tc.p), tc.opts)
			s := open(t, b, provision(t, b))
			_, isBK := s.(backend.BindingKeys)
			_, isAtt := s.(backend.Attester)
			if isBK != c.Holds(backend.AlgP256) || isAtt != tc.attest {
				t.Fatalf("session BindingKeys=%v Attester=%v for capabilities %+v", isBK, isAtt, c)
			}
		})
	}
}

func TestOptionsRefusedByHardware(t *testing.T) {
	bioOnly := simulated.StrongBox(0)
	bioOnly.UserAuth = bridge.AuthBiometric
	noUnlocked := simulated.StrongBox(0)
	noUnlocked.UnlockedOnly = false
	for _, tc := range []struct {
		desc string
		p    simulated.Profile
		opts Options
	}{
		{"credential not offered", bioOnly, Options{KDF: testkit.FastKDF, UserAuth: bridge.AuthDeviceCredential}},
		{"window beyond the SE's 5 minutes", simulated.SecureEnclave(), Options{KDF: testkit.FastKDF, UserAuth: either, AuthValidity: 10 * time.Minute}},
		{"no unlocked-only keys", noUnlocked, Options{KDF: testkit.FastKDF}},
	} {
		if _, err := New(newDevice(tc.p), tc.opts); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", tc.desc, err)
		}
	}
	for _, opts := range []Options{
		{KDF: testkit.FastKDF, UserAuth: 4},
		{KDF: testkit.FastKDF, UserAuth: either, AuthValidity: 1500 * time.Millisecond},
		{KDF: testkit.FastKDF, UserAuth: either, AuthValidity: -time.Second},
		{KDF: testkit.FastKDF, UserAuth: -1},
	} {
		if _, err := New(newDevice(simulated.StrongBox(0)), opts); err == nil {
			t.Errorf("options %+v accepted", opts)
		}
	}
	// A store opened with other access control than it was made with is
	// refused: the reported gates would be false.
	d := newDevice(simulated.StrongBox(0))
	st := provision(t, newBackend(t, d, withAuth))
	weaker := newBackend(t, d, Options{KDF: testkit.FastKDF})
	if _, err := weaker.Open(bg, st, secret); !errors.Is(err, backend.ErrState) {
		t.Fatalf("open with other access control: err = %v, want ErrState", err)
	}
}

// device_unlocked: with the device locked, the hardware refuses the store
// key and the binding key, whatever the Go side thinks.
func TestDeviceLockedRefused(t *testing.T) {
	for _, p := range []simulated.Profile{simulated.SecureEnclave(), simulated.StrongBox(testDelay)} {
		t.Run(p.Level, func(t *testing.T) {
			d := newDevice(p)
			b := newBackend(t, d, withAuth)
			st := provision(t, b)
			s := open(t, b, st)
			sealed, err := s.Seal(bg, "enigm/kek/identity", bytes.Repeat([]byte{1}, 32))
			if err != nil {
				t.Fatal(err)
			}
			_, key := testkit.BindingKey(t, s)
			dg := sha256.Sum256([]byte("m"))
			d.Lock()
			if _, err := s.Unseal(bg, "enigm/kek/identity", sealed); testkit.GateOf(err) != backend.GateDeviceUnlocked {
				t.Fatalf("Unseal while locked: err = %v, want a device_unlocked GateError", err)
			}
			if _, err := b.Open(bg, st, secret); testkit.GateOf(err) != backend.GateDeviceUnlocked || !errors.Is(err, backend.ErrGate) {
				t.Fatalf("Open while locked: err = %v", err)
			}
			if _, err := key.Sign(nil, dg[:], crypto.SHA256); testkit.GateOf(err) != backend.GateDeviceUnlocked {
				t.Fatalf("binding key Sign while locked: err = %v", err)
			}
			if _, err := b.Provision(bg, secret); p.AES && testkit.GateOf(err) != backend.GateDeviceUnlocked {
				t.Fatalf("Provision while locked: err = %v", err)
			}
			d.Unlock()
			if got, err := s.Unseal(bg, "enigm/kek/identity", sealed); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{1}, 32)) {
				t.Fatalf("after unlock: %v", err)
			}
			if _, err := key.Sign(nil, dg[:], crypto.SHA256); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// user_presence with a validity window: the hardware refuses once the
// window has passed, until the user authenticates again.
func TestAuthWindow(t *testing.T) {
	d := newDevice(simulated.StrongBox(testDelay))
	b := newBackend(t, d, withAuth)
	st := provision(t, b)
	s := open(t, b, st)
	sealed, err := s.Seal(bg, "l", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	d.Advance(61 * time.Second)
	if _, err := s.Unseal(bg, "l", sealed); testkit.GateOf(err) != backend.GateUserPresence {
		t.Fatalf("after the window: err = %v, want a user_presence GateError", err)
	}
	if _, err := b.Open(bg, st, secret); testkit.GateOf(err) != backend.GateUserPresence {
		t.Fatalf("Open after the window: err = %v", err)
	}
	d.Authenticate(bridge.AuthDeviceCredential)
	if _, err := s.Unseal(bg, "l", sealed); err != nil {
		t.Fatal(err)
	}
}

// Per-use authentication: every hardware use needs its own authentication.
func TestAuthPerUse(t *testing.T) {
	d := newDevice(simulated.SecureEnclave())
	b := newBackend(t, d, Options{KDF: testkit.FastKDF, UserAuth: either})
	d.Authenticate(bridge.AuthBiometric)
	st := provision(t, b) // ECIES: provisioning seals in software, no use
	d.Authenticate(bridge.AuthBiometric)
	s := open(t, b, st) // one use (the check value)
	sealed, err := s.Seal(bg, "l", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(bg, "l", sealed); testkit.GateOf(err) != backend.GateUserPresence {
		t.Fatalf("second use without authentication: err = %v", err)
	}
	d.Authenticate(bridge.AuthDeviceCredential)
	if _, err := s.Unseal(bg, "l", sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(bg, "l", sealed); testkit.GateOf(err) != backend.GateUserPresence {
		t.Fatalf("the authentication was used twice: err = %v", err)
	}
}

// A biometric-only key dies with a change of enrolled biometrics: the
// store is permanently unusable (ErrKeyInvalidated, ErrDestroyed).
func TestBiometricChangeInvalidates(t *testing.T) {
	for _, p := range []simulated.Profile{simulated.SecureEnclave(), simulated.StrongBox(0)} {
		t.Run(p.Level, func(t *testing.T) {
			d := newDevice(p)
			b := newBackend(t, d, Options{KDF: testkit.FastKDF, UserAuth: bridge.AuthBiometric, AuthValidity: time.Minute})
			st := provision(t, b)
			open(t, b, st).Close()
			d.ChangeBiometrics()
			d.Authenticate(bridge.AuthBiometric)
			_, err := b.Open(bg, st, secret)
			if !errors.Is(err, ErrKeyInvalidated) || !errors.Is(err, backend.ErrDestroyed) {
				t.Fatalf("err = %v, want ErrKeyInvalidated", err)
			}
			// A key that also accepts the device credential survives.
			b2 := newBackend(t, d, withAuth)
			st2 := provision(t, b2)
			d.ChangeBiometrics()
			d.Authenticate(bridge.AuthBiometric)
			open(t, b2, st2)
		})
	}
}

// AfterFirstUnlock (iOS): usable while locked, but not between boot and
// the first unlock.
func TestAfterFirstUnlock(t *testing.T) {
	d := newDevice(simulated.SecureEnclave())
	b := newBackend(t, d, Options{KDF: testkit.FastKDF, AllowLocked: true})
	st := provision(t, b)
	d.Lock()
	open(t, b, st).Close()
	d.Reboot()
	if _, err := b.Open(bg, st, secret); testkit.GateOf(err) != backend.GateDeviceUnlocked {
		t.Fatalf("before the first unlock: err = %v", err)
	}
	d.Unlock()
	d.Lock()
	open(t, b, st)
}

// Destroy deletes every hardware key of the store (needing no secret, and
// working on a locked device); copies of the state open nothing.
func TestDestroyDeletesHardwareKeys(t *testing.T) {
	d := newDevice(simulated.StrongBox(0))
	b := newBackend(t, d, withAuth)
	other := provision(t, b) // another store on the same device survives
	st := provision(t, b)
	s := open(t, b, st)
	blob, _ := testkit.BindingKey(t, s)
	sealed, err := s.Seal(bg, "l", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if n := d.KeyCount(); n != 3 {
		t.Fatalf("%d hardware keys, want 3", n)
	}
	d.Lock()
	testkit.NoErr(t, b.Destroy(bg, st))
	d.Unlock()
	if n := d.KeyCount(); n != 1 {
		t.Fatalf("%d hardware keys after Destroy, want 1 (the other store's)", n)
	}
	if _, err := s.Unseal(bg, "l", sealed); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("open session after Destroy: err = %v", err)
	}
	if _, err := s.(backend.BindingKeys).LoadBindingKey(bg, blob); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("binding key after Destroy: err = %v", err)
	}
	if _, err := b.Open(bg, st, secret); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("copy of the state after Destroy: err = %v", err)
	}
	open(t, b, other)
	if err := b.Destroy(bg, []byte("junk")); !errors.Is(err, backend.ErrState) {
		t.Fatalf("Destroy of junk: %v", err)
	}
}

func TestBindingKeyBlobs(t *testing.T) {
	d := newDevice(simulated.SecureEnclave())
	b := newBackend(t, d, withAuth)
	s1 := open(t, b, provision(t, b))
	s2 := open(t, b, provision(t, b))
	blob, _ := testkit.BindingKey(t, s1)
	if _, err := s2.(backend.BindingKeys).LoadBindingKey(bg, blob); !errors.Is(err, backend.ErrState) {
		t.Fatalf("another store's blob: err = %v", err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 0x01
		if _, err := s1.(backend.BindingKeys).LoadBindingKey(bg, bad); err == nil {
			t.Fatalf("blob with byte %d flipped loaded", i)
		}
	}
	s1.Close()
	if _, err := s1.(backend.BindingKeys).LoadBindingKey(bg, blob); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, _, err := s1.(backend.BindingKeys).CreateBindingKey(bg); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	b := newBackend(t, newDevice(simulated.StrongBox(0)), withAuth)
	st := provision(t, b)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := b.Provision(ctx, secret); !errors.Is(err, context.Canceled) {
		t.Fatalf("Provision: %v", err)
	}
	if _, err := b.Open(ctx, st, secret); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open: %v", err)
	}
	s := open(t, b, st)
	if _, err := s.Seal(ctx, "l", []byte("k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seal: %v", err)
	}
	if _, err := b.Provision(bg, nil); err == nil {
		t.Fatal("empty secret accepted")
	}
}
