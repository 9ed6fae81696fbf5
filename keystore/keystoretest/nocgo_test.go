//go:build !cgo

package keystoretest

import (
	"errors"
	"testing"

	"github.com/enigm/enigm/internal/testenv"
)

var errNoCgo = errors.New("built without cgo")

func setupHSM() func() { return func() {} }

func tpmMaker() maker {
	return maker{"tpm-sim", func(t testing.TB) *env { testenv.Missing(t, "TPM simulator", errNoCgo); return nil }}
}

func hsmMaker() maker {
	return maker{"softhsm2", func(t testing.TB) *env { testenv.Missing(t, "SoftHSM2", errNoCgo); return nil }}
}

func benchTokenSign(b *testing.B) {
	b.Run("pkcs11-p256-C_Sign/softhsm2", func(b *testing.B) { testenv.Missing(b, "SoftHSM2", errNoCgo) })
}
