//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/internal/testenv"
)

// Token setups the scheme tests run on, besides SoftHSM2 with every
// mechanism (softhsm_test.go):
//
//   - softhsm2-no-gcm: SoftHSM2 with CKM_AES_GCM removed through
//     slots.mechanisms, like an HSM or card without GCM;
//   - softhsm2-ec-only: SoftHSM2 offering only CKM_EC_KEY_PAIR_GEN,
//     CKM_ECDSA and CKM_ECDH1_DERIVE, like a PIV token (YubiKey through
//     ykcs11, OpenSC's PIV driver);
//   - opencryptoki: openCryptoki's soft token (no GCM, no EC, PINs of 4 to
//     8 bytes), reached through its slot daemon pkcsslotd. scripts/test.sh
//     installs it, starts the daemon, initializes the token with pkcsconf
//     and exports ENIGM_TEST_OPENCRYPTOKI_{MODULE,LABEL,PIN}.
//
// SoftHSM2 reads its configuration once per loaded module, so each
// restricted setup loads its own copy of libsofthsm2.so (a distinct path
// is a distinct module to the dynamic loader) with its own configuration
// and token directory.

type setup struct {
	name   string
	module string
	scheme uint8 // the scheme Provision chooses on this setup
	ecdsa  bool  // binding keys available
	pin    []byte
	shared string // label of the one shared token (openCryptoki); "" = fresh tokens
	err    error  // why the setup is unavailable
}

var (
	setupNoGCM = &setup{name: "softhsm2-no-gcm", scheme: schemeCBCHMAC, ecdsa: true, pin: pin}
	setupEC    = &setup{name: "softhsm2-ec-only", scheme: schemeECDH, ecdsa: true, pin: pin}
	setupOCK   = &setup{name: "opencryptoki", scheme: schemeCBCHMAC, ecdsa: false}
	setupFull  = &setup{name: "softhsm2-full", scheme: schemeGCM2, ecdsa: true, pin: pin}
)

// allSetups in the order the tests run them.
func allSetups() []*setup {
	setupFull.module, setupFull.err = hsmModule, hsmErr
	return []*setup{setupFull, setupNoGCM, setupEC, setupOCK}
}

func setupRestricted(dir string) {
	for _, su := range []struct {
		s    *setup
		mech string
	}{
		// "-A,B" disables B: SoftHSM 2.6.1 drops the first name of a
		// minus list, so the mechanism is named twice.
		{setupNoGCM, "-CKM_AES_GCM,CKM_AES_GCM"},
		{setupEC, "CKM_EC_KEY_PAIR_GEN,CKM_ECDSA,CKM_ECDH1_DERIVE"},
	} {
		su.s.err = func() error {
			src, err := findModule("")
			if err != nil {
				return err
			}
			d := filepath.Join(dir, su.s.name)
			if err := os.MkdirAll(filepath.Join(d, "tokens"), 0o700); err != nil {
				return err
			}
			lib := filepath.Join(d, "libsofthsm2.so")
			if err := copyFile(src, lib); err != nil {
				return err
			}
			conf := filepath.Join(d, "softhsm2.conf")
			cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = %s\n", filepath.Join(d, "tokens"), su.mech)
			if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
				return err
			}
			if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
				return err
			}
			if _, err := loadModule(lib); err != nil {
				return err
			}
			su.s.module = lib
			return nil
		}()
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

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

func setupOpenCryptoki() {
	mod, label, p := os.Getenv("ENIGM_TEST_OPENCRYPTOKI_MODULE"), os.Getenv("ENIGM_TEST_OPENCRYPTOKI_LABEL"), os.Getenv("ENIGM_TEST_OPENCRYPTOKI_PIN")
	if mod == "" || label == "" || p == "" {
		setupOCK.err = errors.New("ENIGM_TEST_OPENCRYPTOKI_MODULE, _LABEL and _PIN are not set (scripts/test.sh sets them after starting pkcsslotd and initializing the soft token)")
		return
	}
	if _, err := loadModule(mod); err != nil {
		setupOCK.err = err
		return
	}
	setupOCK.module, setupOCK.shared, setupOCK.pin = mod, label, []byte(p)
}

// need fails (under ENIGM_REQUIRE_ALL=1) or skips without the setup.
func (su *setup) need(t testing.TB) {
	t.Helper()
	if su.err != nil {
		testenv.Missing(t, "PKCS#11 token setup "+su.name, su.err)
	}
}

// token returns the label of a token to use: a fresh one on SoftHSM2, the
// shared one on openCryptoki.
func (su *setup) token(t testing.TB) string {
	t.Helper()
	su.need(t)
	if su.shared != "" {
		return su.shared
	}
	m, err := loadModule(su.module)
	if err != nil {
		t.Fatal(err)
	}
	return initToken(t, m.ctx, su.pin)
}

// backend returns a backend on a token of the setup.
func (su *setup) backend(t testing.TB, opts Options, wrap func(token) token) *Backend {
	t.Helper()
	if opts.TokenLabel == "" {
		opts.TokenLabel = su.token(t)
	}
	opts.Module = su.module
	b, err := newBackend(opts, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachSetup runs fn on every setup.
func forEachSetup(t *testing.T, fn func(t *testing.T, su *setup)) {
	for _, su := range allSetups() {
		t.Run(su.name, func(t *testing.T) {
			su.need(t)
			fn(t, su)
		})
	}
}

// initToken initializes a free slot's token with the user PIN pin.
func initToken(t testing.TB, ctx *p11.Ctx, pin []byte) string {
	t.Helper()
	label := fmt.Sprintf("enigm-test-%d", tokenSeq.Add(1))
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		t.Fatal("the module offers no free slot")
	}
	if err := ctx.InitToken(free, soPIN, label); err != nil {
		t.Fatalf("C_InitToken: %v", err)
	}
	sh, err := ctx.OpenSession(free, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, p11.CKU_SO, soPIN); err != nil {
		t.Fatalf("SO login: %v", err)
	}
	defer ctx.Logout(sh)
	if err := ctx.InitPIN(sh, string(pin)); err != nil {
		t.Fatalf("C_InitPIN: %v", err)
	}
	return label
}
