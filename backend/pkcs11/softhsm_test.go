//go:build cgo

package pkcs11

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/testenv"
)

// The tests run against SoftHSM2 with a throwaway token directory: TestMain
// points SOFTHSM2_CONF at a generated configuration before the module is
// loaded, and every test initializes its own token through the module
// (C_InitToken, C_InitPIN). No system token is ever touched.

// pin is the user PIN of test tokens: the conformance suite's secret.
var pin = []byte("correct horse battery staple")

const soPIN = "enigm-test-so-pin"

var (
	hsmModule string // module path, when SoftHSM2 is usable
	hsmErr    error  // why it is not
	tokenSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "enigm-softhsm-")
		if err != nil {
			hsmErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		// The restricted SoftHSM2 setups first: each loads its own copy
		// of the module, which reads SOFTHSM2_CONF in C_Initialize.
		setupRestricted(dir)
		hsmErr = setupSoftHSM(dir)
		setupOpenCryptoki()
		setupTPM2PKCS11(dir)
		return m.Run()
	}())
}

func setupSoftHSM(dir string) error {
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return err
	}
	// Before the module is loaded: SoftHSM2 reads it in C_Initialize.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	path, err := findModule("")
	if err != nil {
		return err
	}
	if _, err := loadModule(path); err != nil {
		return err
	}
	hsmModule = path
	return nil
}

// needHSM skips (or, under ENIGM_REQUIRE_ALL=1, fails) without SoftHSM2.
func needHSM(t testing.TB) *module {
	t.Helper()
	if hsmErr != nil {
		testenv.Missing(t, "SoftHSM2", hsmErr)
	}
	m, err := loadModule(hsmModule)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newToken initializes a fresh SoftHSM2 token with the test PIN and
// returns its label.
func newToken(t testing.TB) string {
	t.Helper()
	return initToken(t, needHSM(t).ctx, pin)
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
	opts.Module = hsmModule
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
	st, err := b.Provision(bg, pin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Open(bg, st, pin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return st, s
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
