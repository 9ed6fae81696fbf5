//go:build cgo

package tpm

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	legacy "github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpmutil"

	"github.com/enigm/enigm/internal/testenv"
)

// The in-process simulator is one global TPM (cgo, Microsoft reference
// implementation). Tests share it and never run in parallel; each backend
// from newSim starts from a freshly manufactured TPM.

// simSeed fixes the simulator's hierarchy seeds, so the attestation key is
// the same on every run. Tests only.
const simSeed = 0x456e69676d // "Enigm"

var (
	simMu    sync.Mutex
	sim      *simulator.Simulator
	simErr   error
	simStart sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sim != nil {
		sim.Close()
	}
	os.Exit(code)
}

func simSend(cmd []byte) ([]byte, error) {
	simMu.Lock()
	defer simMu.Unlock()
	if sim == nil {
		return nil, errors.New("simulator stopped")
	}
	return tpmutil.RunCommandRaw(sim, cmd)
}

// startSim returns the shared simulator, manufactured afresh with lenient
// dictionary-attack parameters.
func startSim(t testing.TB) {
	t.Helper()
	simStart.Do(func() { sim, simErr = simulator.GetWithFixedSeedInsecure(simSeed) })
	if simErr != nil {
		testenv.Missing(t, "TPM simulator", simErr)
	}
	simMu.Lock()
	err := sim.ManufactureReset()
	simMu.Unlock()
	if err != nil {
		t.Fatalf("simulator reset: %v", err)
	}
	setDA(t, 1000, 1000)
}

// setDA sets the dictionary-attack parameters with the (empty) lockout
// authorization and clears the failure counter.
func setDA(t testing.TB, maxTries, recovery uint32) {
	t.Helper()
	simMu.Lock()
	defer simMu.Unlock()
	rw := sim
	pw := legacy.AuthCommand{Session: legacy.HandlePasswordSession, Attributes: legacy.AttrContinueSession}
	if err := legacy.DictionaryAttackLockReset(rw, pw); err != nil {
		t.Fatalf("DictionaryAttackLockReset: %v", err)
	}
	if err := legacy.DictionaryAttackParameters(rw, pw, maxTries, recovery, recovery); err != nil {
		t.Fatalf("DictionaryAttackParameters: %v", err)
	}
}

// rebootSim resets the simulator as a host reboot does: PCRs return to
// their initial values, persistent objects stay.
func rebootSim(t testing.TB) {
	t.Helper()
	simMu.Lock()
	defer simMu.Unlock()
	if err := sim.Reset(); err != nil {
		t.Fatalf("simulator reboot: %v", err)
	}
}
