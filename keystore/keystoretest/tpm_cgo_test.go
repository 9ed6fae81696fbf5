//go:build cgo

package keystoretest

import (
	"testing"

	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/tpmsim"
)

// The in-process TPM simulator is one global TPM per process; each env
// starts from a freshly manufactured one (internal/tpmsim).
func tpmMaker() maker {
	return maker{"tpm-sim", func(t testing.TB) *env {
		if err := tpmsim.Reset(); err != nil {
			testenv.Missing(t, "TPM simulator", err)
		}
		b, err := tpm.New(tpm.Options{Open: tpmsim.Open})
		if err != nil {
			t.Fatal(err)
		}
		return newEnv("tpm-sim", b, nil)
	}}
}
