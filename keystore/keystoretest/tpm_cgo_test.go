//go:build cgo

package keystoretest

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	legacy "github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpmutil"

	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/internal/testenv"
)

// The in-process TPM simulator is one global TPM per process (cgo, the
// Microsoft reference implementation). Tests here never run in parallel;
// each env starts from a freshly manufactured TPM.
var (
	simOnce sync.Once
	simMu   sync.Mutex
	sim     *simulator.Simulator
	simErr  error
)

type simConn struct{}

func (simConn) Send(cmd []byte) ([]byte, error) {
	simMu.Lock()
	defer simMu.Unlock()
	if sim == nil {
		return nil, errors.New("TPM simulator not running")
	}
	return tpmutil.RunCommandRaw(sim, cmd)
}

func (simConn) Close() error { return nil }

// resetTPM manufactures the simulator afresh, with lenient
// dictionary-attack parameters (the tests try wrong secrets).
func resetTPM(t testing.TB) {
	t.Helper()
	simOnce.Do(func() { sim, simErr = simulator.GetWithFixedSeedInsecure(0x456e69676d) })
	if simErr != nil {
		testenv.Missing(t, "TPM simulator", simErr)
	}
	simMu.Lock()
	defer simMu.Unlock()
	if err := sim.ManufactureReset(); err != nil {
		t.Fatalf("TPM simulator reset: %v", err)
	}
	pw := legacy.AuthCommand{Session: legacy.HandlePasswordSession, Attributes: legacy.AttrContinueSession}
	if err := legacy.DictionaryAttackLockReset(sim, pw); err != nil {
		t.Fatal(err)
	}
	if err := legacy.DictionaryAttackParameters(sim, pw, 1000, 1000, 1000); err != nil {
		t.Fatal(err)
	}
}

func tpmMaker() maker {
	return maker{"tpm-sim", func(t testing.TB) *env {
		resetTPM(t)
		b, err := tpm.New(tpm.Options{Open: func() (transport.TPMCloser, error) { return simConn{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return newEnv("tpm-sim", b, nil)
	}}
}
