package keystore

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// The app's device-lock signal locks the store: keys in memory are gone,
// uses are denied with "locked".
func TestOnDeviceLocked(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	testkit.NoErr(t, signP(k))
	testkit.NoErr(t, f.s.OnDeviceLocked())
	if got := deniedCodes(t, signP(k)); !slices.Contains(got, "locked") {
		t.Fatalf("after the device locked: %v", got)
	}
	if st, _ := f.s.Status(); !st.Locked {
		t.Fatal("status is not locked")
	}
	testkit.NoErr(t, f.s.Unlock(context.Background(), testPass))
	testkit.NoErr(t, signP(k))
}

// phoneStore is a store over the simulated StrongBox, unlocked, with the
// user authenticated.
func phoneStore(t *testing.T) (*Store, *simulated.Device) {
	t.Helper()
	d := simulated.New(simulated.StrongBox(0))
	d.Authenticate(bridge.AuthBiometric)
	b, err := platform.New(d, platform.Options{KDF: testkit.FastKDF, UserAuth: bridge.AuthBiometric | bridge.AuthDeviceCredential, AuthValidity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Backend: func(string) (backend.Backend, error) { return b, nil }, Posture: posture.Static{Level: policy.PostureDegraded}, Clock: d.Now}
	s, err := Init(context.Background(), filepath.Join(t.TempDir(), "h"), b, testPass, InitOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetAppAuthorized(true)
	return s, d
}

// When the hardware refuses a binding-key signature because the device is
// locked, the store locks too: wrapped keys follow the hardware gate.
func TestHardwareRefusalLocks(t *testing.T) {
	s, d := phoneStore(t)
	id, err := s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := s.Identity(id.ID)
	bk, err := s.Binding()
	if err != nil {
		t.Fatal(err)
	}
	dg := sha256.Sum256([]byte("m"))
	if _, err := bk.Sign(appPurpose("m"), dg[:]); err != nil {
		t.Fatal(err)
	}
	d.Lock() // the app has not told the keystore
	_, err = bk.Sign(appPurpose("m"), dg[:])
	var g *backend.GateError
	if !errors.As(err, &g) || g.Gate != backend.GateDeviceUnlocked {
		t.Fatalf("binding key while the device is locked: err = %v", err)
	}
	if got := deniedCodes(t, signP(k)); !slices.Contains(got, "locked") {
		t.Fatalf("wrapped key after the hardware refused: %v", got)
	}
	if err := s.Unlock(context.Background(), testPass); !errors.Is(err, backend.ErrGate) {
		t.Fatalf("unlock while the device is locked: err = %v", err)
	}
	d.Unlock()
	testkit.NoErr(t, s.Unlock(context.Background(), testPass))
	testkit.NoErr(t, signP(k))
}

func TestCheckHardware(t *testing.T) {
	s, d := phoneStore(t)
	ctx := context.Background()
	testkit.NoErr(t, s.CheckHardware(ctx))
	// A lapsed authentication window is reported but does not lock.
	d.Advance(2 * time.Hour)
	if err := s.CheckHardware(ctx); !errors.Is(err, backend.ErrGate) {
		t.Fatalf("err = %v", err)
	}
	if st, _ := s.Status(); st.Locked {
		t.Fatal("a stale authentication locked the store")
	}
	d.Authenticate(bridge.AuthDeviceCredential)
	d.Lock()
	if err := s.CheckHardware(ctx); !errors.Is(err, backend.ErrGate) {
		t.Fatalf("err = %v", err)
	}
	if st, _ := s.Status(); !st.Locked {
		t.Fatal("the store stayed unlocked while the hardware refuses")
	}
	if err := s.CheckHardware(ctx); err != nil {
		t.Fatalf("locked store: %v", err)
	}
	// Invalidated hardware (biometric-only keys after a new enrolment
	// would be; here the keys are destroyed) also locks.
	d.Unlock()
	testkit.NoErr(t, s.Unlock(ctx, testPass))
	d.DeleteKeys("enigm.")
	if err := s.CheckHardware(ctx); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("err = %v", err)
	}
	if st, _ := s.Status(); !st.Locked {
		t.Fatal("the store stayed unlocked over destroyed hardware keys")
	}
	s.Close()
	if err := s.CheckHardware(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}
