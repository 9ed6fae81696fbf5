//go:build cgo

package pkcs11

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
)

// The token setups (pkcs11test: SoftHSM2 full, no-GCM and EC-only, and
// openCryptoki's soft token), each with the scheme Provision chooses there.
type setup struct {
	*pkcs11test.Setup
	scheme uint8
}

var (
	setupFull  = &setup{pkcs11test.Full, schemeGCM2}
	setupNoGCM = &setup{pkcs11test.NoGCM, schemeCBCHMAC}
	setupEC    = &setup{pkcs11test.ECOnly, schemeECDH}
	setupOCK   = &setup{pkcs11test.OpenCryptoki, schemeCBCHMAC}
)

// allSetups in the order the tests run them.
func allSetups() []*setup { return []*setup{setupFull, setupNoGCM, setupEC, setupOCK} }

// tpm2-pkcs11 over swtpm: scripts/test.sh starts swtpm and exports
// ENIGM_TEST_TPM2_PKCS11_{MODULE,TCTI}; the test gives the module a
// throwaway store directory and initializes a token through it.
var (
	tpm2Module string
	errTPM2    = errors.New("ENIGM_TEST_TPM2_PKCS11_MODULE and _TCTI are not set (scripts/test.sh sets them after starting swtpm)")
)

func setupTPM2PKCS11(dir string) {
	mod, tcti := os.Getenv("ENIGM_TEST_TPM2_PKCS11_MODULE"), os.Getenv("ENIGM_TEST_TPM2_PKCS11_TCTI")
	if mod == "" || tcti == "" {
		return
	}
	store := filepath.Join(dir, "tpm2-pkcs11")
	if errTPM2 = os.Mkdir(store, 0o700); errTPM2 != nil {
		return
	}
	// Read by the module in C_Initialize.
	os.Setenv("TPM2_PKCS11_STORE", store)
	os.Setenv("TPM2_PKCS11_TCTI", tcti)
	os.Setenv("TPM2_PKCS11_LOG_LEVEL", "0")
	if _, errTPM2 = loadModule(mod); errTPM2 == nil {
		tpm2Module = mod
	}
}

// backend returns a backend on a token of the setup.
func (su *setup) backend(t testing.TB, opts Options, wrap func(token) token) *Backend {
	t.Helper()
	if opts.TokenLabel == "" {
		opts.TokenLabel = su.Token(t)
	}
	opts.Module = su.Module
	b, err := newBackend(opts, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachSetup runs fn on every setup.
func forEachSetup(t *testing.T, fn func(t *testing.T, su *setup)) {
	for _, su := range allSetups() {
		t.Run(su.Name, func(t *testing.T) {
			su.Need(t)
			fn(t, su)
		})
	}
}
