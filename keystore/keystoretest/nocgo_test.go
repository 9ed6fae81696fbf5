//go:build !cgo

package keystoretest

import (
	"errors"
	"testing"

	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
	"github.com/enigm/enigm/internal/testenv"
)

var errNoCgo = errors.New("built without cgo")

func setupPKCS11() func() { return func() {} }

func tpmMaker() maker {
	return maker{"tpm-sim", func(t testing.TB) *env { testenv.Missing(t, "TPM simulator", errNoCgo); return nil }}
}

func pkcs11Makers() []maker {
	var ms []maker
	for _, name := range pkcs11test.Names() {
		ms = append(ms, maker{"pkcs11/" + name, func(t testing.TB) *env {
			testenv.Missing(t, "PKCS#11 token setup "+name, errNoCgo)
			return nil
		}})
	}
	return ms
}

func hsmMaker() maker {
	return maker{"softhsm2", func(t testing.TB) *env { testenv.Missing(t, "SoftHSM2", errNoCgo); return nil }}
}

func benchTokenSign(b *testing.B) {
	b.Run("pkcs11-p256-C_Sign/softhsm2", func(b *testing.B) { testenv.Missing(b, "SoftHSM2", errNoCgo) })
}
