package pkcs11

import (
	"fmt"

	"github.com/enigm/enigm/backend"
)

// Options configure the backend.
type Options struct {
	// Module is the path of the PKCS#11 module (a shared library). Empty
	// means the first of DefaultModulePaths that exists.
	Module string
	// TokenLabel and TokenSerial select the token Provision uses; when
	// both are empty the module must offer exactly one initialized token.
	// Open and Destroy find the token recorded in the state instead.
	TokenLabel  string
	TokenSerial string
}

// DefaultModulePaths are searched, in order, when Options.Module is empty:
// SoftHSM2 where Debian, Ubuntu and Fedora install it.
var DefaultModulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
}

// ErrTokenFault reports a token that answered with an invalid result: a
// signature that does not verify, a plaintext or ciphertext of the wrong
// length or content, or a key without the attributes it was created with.
// The operation failed closed; the token should not be trusted.
var ErrTokenFault = fmt.Errorf("pkcs11: %w", backend.ErrHardwareFault)

// Limits.
const (
	// MaxSealSize is the largest secret Seal accepts. Wrapping keys are 32
	// bytes; 1 KiB leaves room for future small secrets while keeping each
	// single-part C_Encrypt (at most MaxSealSize+57 bytes) within the I/O
	// buffers of smart cards with extended APDUs and of network HSMs.
	MaxSealSize = 1024
	// MaxLabelSize bounds a seal label, which goes to the token as GCM
	// additional data.
	MaxLabelSize = 256
)

func capabilities() backend.Capabilities {
	return backend.Capabilities{
		Name:        "pkcs11",
		Level:       backend.LevelHardwarePKCS11,
		Resident:    []string{backend.AlgP256, backend.AlgAES256},
		MaxSealSize: MaxSealSize,
		HardwareGates: []backend.Gate{
			backend.GateUnlockSecret,
			backend.GateNonExportable,
			backend.GateDestroy,
		},
	}
}
