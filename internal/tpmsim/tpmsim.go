//go:build cgo

// Package tpmsim gives tests outside backend/tpm a TPM 2.0: the in-process
// simulator (Microsoft's reference implementation through go-tpm-tools),
// shared by the whole test binary, with lenient dictionary-attack limits.
// It is for tests and demos only: its seeds are fixed and its state is lost
// when the process exits.
package tpmsim

import (
	"errors"
	"sync"

	"github.com/google/go-tpm-tools/simulator"
	legacy "github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpmutil"
)

const seed = 0x456e69676d

var (
	mu    sync.Mutex
	sim   *simulator.Simulator
	err   error
	start sync.Once
)

// Open returns a connection to the process's simulator, starting it on
// first use. Closing the connection leaves the simulator running.
func Open() (transport.TPMCloser, error) {
	start.Do(func() {
		sim, err = simulator.GetWithFixedSeedInsecure(seed)
		if err == nil {
			err = lenient()
		}
	})
	if err != nil {
		return nil, err
	}
	return conn{}, nil
}

// Reset manufactures the simulator afresh (every object, persistent handle
// and counter gone), with lenient dictionary-attack limits, so that a test
// starts from a new TPM.
func Reset() error {
	if _, err := Open(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if err := sim.ManufactureReset(); err != nil {
		return err
	}
	return lenient()
}

// lenient resets the dictionary-attack counter and allows 1000 wrong
// secrets (tests try wrong secrets on purpose).
func lenient() error {
	pw := legacy.AuthCommand{Session: legacy.HandlePasswordSession, Attributes: legacy.AttrContinueSession}
	if err := legacy.DictionaryAttackLockReset(sim, pw); err != nil {
		return err
	}
	return legacy.DictionaryAttackParameters(sim, pw, 1000, 1, 1)
}

type conn struct{}

func (conn) Send(cmd []byte) ([]byte, error) {
	mu.Lock()
	defer mu.Unlock()
	if sim == nil {
		return nil, errors.New("tpmsim: simulator not running")
	}
	return tpmutil.RunCommandRaw(sim, cmd)
}

func (conn) Close() error { return nil }
