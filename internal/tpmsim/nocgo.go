//go:build !cgo

package tpmsim

import (
	"errors"

	"github.com/google/go-tpm/tpm2/transport"
)

// Open fails: the simulator needs cgo.
func Open() (transport.TPMCloser, error) {
	return nil, errors.New("tpmsim: built without cgo: the TPM simulator is unavailable")
}

// Reset fails: the simulator needs cgo.
func Reset() error {
	return errors.New("tpmsim: built without cgo: the TPM simulator is unavailable")
}
