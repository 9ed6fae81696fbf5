package platform

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
)

var (
	bg       = context.Background()
	secret   = []byte("correct horse battery staple")
	either   = bridge.AuthBiometric | bridge.AuthDeviceCredential
	withAuth = Options{KDF: testkit.FastKDF, UserAuth: either, AuthValidity: time.Minute}
)

// testDelay is the StrongBox profile's per-operation delay in tests: small,
// but not zero, so that the delay path runs.
const testDelay = time.Millisecond

// newDevice returns a simulated device, unlocked, with the user
// authenticated by a biometric.
func newDevice(p simulated.Profile) *simulated.Device {
	d := simulated.New(p)
	d.Authenticate(bridge.AuthBiometric)
	return d
}

func newBackend(t testing.TB, br bridge.Hardware, opts Options) *Backend {
	t.Helper()
	b, err := New(br, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// provision provisions a store on b with the test secret.
func provision(t testing.TB, b *Backend) []byte {
	t.Helper()
	return backendtest.Provision(t, b, secret)
}

// open opens the store st of b with the test secret for the rest of the
// test.
func open(t testing.TB, b *Backend, st []byte) backend.Session {
	t.Helper()
	return backendtest.Open(t, b, st, secret)
}

// flatten passes a bridge's errors on as plain strings, as they arrive
// after crossing the gomobile boundary.
type flatten struct{ bridge.Hardware }

func flat(err error) error {
	if err == nil {
		return nil
	}
	return errors.New("Error Domain=go Code=1 \"" + err.Error() + "\"")
}

func (f flatten) Info() (*bridge.Info, error) { i, err := f.Hardware.Info(); return i, flat(err) }
func (f flatten) GenerateKey(s *bridge.KeySpec) (*bridge.Key, error) {
	k, err := f.Hardware.GenerateKey(s)
	return k, flat(err)
}
func (f flatten) KeyInfo(a string) (*bridge.Key, error) {
	k, err := f.Hardware.KeyInfo(a)
	return k, flat(err)
}
func (f flatten) Sign(a string, d []byte) ([]byte, error) {
	r, err := f.Hardware.Sign(a, d)
	return r, flat(err)
}
func (f flatten) Agree(a string, p []byte) ([]byte, error) {
	r, err := f.Hardware.Agree(a, p)
	return r, flat(err)
}
func (f flatten) Encrypt(a string, p, ad []byte) ([]byte, error) {
	r, err := f.Hardware.Encrypt(a, p, ad)
	return r, flat(err)
}
func (f flatten) Decrypt(a string, c, ad []byte) ([]byte, error) {
	r, err := f.Hardware.Decrypt(a, c, ad)
	return r, flat(err)
}
func (f flatten) Attest(a string) ([]byte, error) {
	r, err := f.Hardware.Attest(a)
	return r, flat(err)
}
func (f flatten) DeleteKey(a string) error { return flat(f.Hardware.DeleteKey(a)) }
func (f flatten) DeleteKeys(p string) (int, error) {
	n, err := f.Hardware.DeleteKeys(p)
	return n, flat(err)
}

func TestConformanceSecureEnclave(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, newDevice(simulated.SecureEnclave()), withAuth)
	})
}

func TestConformanceStrongBox(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, newDevice(simulated.StrongBox(testDelay)), withAuth)
	})
}

// A StrongBox-like element without AES but with ECDH: the backend must
// choose ECIES from the capabilities alone.
func TestConformanceAgreeOnly(t *testing.T) {
	p := simulated.StrongBox(0)
	p.AES, p.Agree = false, true
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, newDevice(p), withAuth)
	})
}

// Errors that crossed the language boundary as strings keep their meaning.
func TestConformanceFlattenedErrors(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, flatten{newDevice(simulated.StrongBox(0))}, withAuth)
	})
}

// A phone without a hardware keystore: keys in OS software, level
// software, no hardware gates.
func TestConformanceSoftwareLevel(t *testing.T) {
	p := simulated.StrongBox(0)
	p.Level, p.Attestation = bridge.LevelSoftware, false
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, newDevice(p), Options{KDF: testkit.FastKDF})
	})
}
