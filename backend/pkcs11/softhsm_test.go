//go:build cgo

package pkcs11

import (
	"os"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
)

// The tests run on the token setups of pkcs11test (setups_test.go):
// TestMain loads them before any other module, and every SoftHSM2 test
// initializes its own token through the module (C_InitToken, C_InitPIN).
// No system token is ever touched.

// pin is the user PIN of SoftHSM2 test tokens: the conformance suite's
// secret.
var pin = pkcs11test.Full.PIN()

func TestMain(m *testing.M) {
	os.Exit(func() int {
		stop := pkcs11test.Start(DefaultModulePaths)
		defer stop()
		dir, err := os.MkdirTemp("", "enigm-pkcs11-")
		if err != nil {
			errTPM2 = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		setupTPM2PKCS11(dir)
		return m.Run()
	}())
}

// needHSM skips (or, under ENIGM_REQUIRE_ALL=1, fails) without SoftHSM2.
func needHSM(t testing.TB) *module {
	t.Helper()
	setupFull.Need(t)
	m, err := loadModule(setupFull.Module)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newToken initializes a fresh SoftHSM2 token with the test PIN and
// returns its label.
func newToken(t testing.TB) string {
	t.Helper()
	return setupFull.Token(t)
}

// newTestBackend returns a backend on the SoftHSM2 token with this label.
func newTestBackend(t testing.TB, label string, wrap func(token) token) *Backend {
	t.Helper()
	return newTestBackendOpts(t, Options{TokenLabel: label}, wrap)
}

// newTestBackendOpts is newTestBackend with options (Module is SoftHSM2's).
func newTestBackendOpts(t testing.TB, opts Options, wrap func(token) token) *Backend {
	t.Helper()
	needHSM(t)
	opts.Module = setupFull.Module
	b, err := newBackend(opts, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openNewStore provisions a store on b and opens it with the test PIN
// for the rest of the test.
func openNewStore(t testing.TB, b *Backend) ([]byte, backend.Session) {
	t.Helper()
	return openNewStorePIN(t, b, pin)
}

// openNewStorePIN is openNewStore with another PIN (a setup's).
func openNewStorePIN(t testing.TB, b *Backend, pin []byte) ([]byte, backend.Session) {
	t.Helper()
	st := backendtest.Provision(t, b, pin)
	return st, backendtest.Open(t, b, st, pin)
}

// inspect logs in to the store's token with the test PIN (through the
// login registry, as the backend does) and runs fn on a raw connection.
func inspect(t testing.TB, b *Backend, st []byte, fn func(c *conn)) {
	t.Helper()
	inspectPIN(t, b, st, pin, fn)
}

// inspectPIN is inspect with the PIN of the token.
func inspectPIN(t testing.TB, b *Backend, st, pin []byte, fn func(c *conn)) {
	t.Helper()
	s, err := parseState(st)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.dial(s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.login(pin); err != nil {
		t.Fatal(err)
	}
	fn(c)
}

// storeObjects lists the store's objects visible to c.
func storeObjects(t testing.TB, c *conn) []p11.ObjectHandle {
	t.Helper()
	hs, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, objectLabel(c.st.StoreID))})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}
