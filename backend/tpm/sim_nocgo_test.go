//go:build !cgo

package tpm

import (
	"errors"
	"testing"

	"github.com/enigm/enigm/internal/testenv"
)

// Without cgo there is no in-process simulator: the tests that need it
// skip, or fail under ENIGM_REQUIRE_ALL=1.

var errNoCgo = errors.New("the TPM simulator needs cgo (CGO_ENABLED=1 and a C compiler)")

func simSend([]byte) ([]byte, error) { return nil, errNoCgo }

func startSim(t testing.TB)           { t.Helper(); testenv.Missing(t, "TPM simulator", errNoCgo) }
func setDA(t testing.TB, _, _ uint32) { t.Helper(); testenv.Missing(t, "TPM simulator", errNoCgo) }
func rebootSim(t testing.TB)          { t.Helper(); testenv.Missing(t, "TPM simulator", errNoCgo) }
