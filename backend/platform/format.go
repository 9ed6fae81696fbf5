package platform

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/internal/wire"
)

// Seal schemes: how the hardware protects the outer layer of sealed data.
const (
	// schemeAES: the hardware encrypts with an AES-256-GCM key it holds
	// (StrongBox, TEE).
	schemeAES = 1
	// schemeECIES: software encrypts to the hardware key's public half
	// (ephemeral P-256 ECDH, HKDF-SHA256, AES-256-GCM); only the hardware
	// can compute the shared secret again (Secure Enclave).
	schemeECIES = 2
)

const (
	stateVersion = 1
	blobVersion  = 1
	sealVersion  = 1

	storeIDSize  = 16
	keyIDSize    = 16
	saltSize     = 16
	pointSize    = 65
	nonceSize    = 12
	tagSize      = 16
	maxStateSize = 1024
	maxBlobSize  = 160
)

// access is the access control a store's hardware keys were generated
// with. It is part of the state so that the gates a backend reports are
// the ones its keys really have: Open refuses a state generated under other
// access control than the backend's options.
type access struct {
	UnlockedOnly   bool   `cbor:"1,keyasint"`
	Auth           int64  `cbor:"2,keyasint"`
	ValiditySecs   int64  `cbor:"3,keyasint"`
	DataProtection string `cbor:"4,keyasint,omitempty"`
}

// state is the persisted, non-secret state of one store. Its encoding is
// golden-tested (format_test.go).
type state struct {
	Version   uint8  `cbor:"1,keyasint"`
	Scheme    uint8  `cbor:"2,keyasint"`
	StoreID   []byte `cbor:"3,keyasint"`
	Level     string `cbor:"4,keyasint"`
	StorePub  []byte `cbor:"5,keyasint,omitempty"` // scheme ECIES: the store key's public point
	Time      uint32 `cbor:"6,keyasint"`
	MemoryKiB uint32 `cbor:"7,keyasint"`
	Threads   uint8  `cbor:"8,keyasint"`
	Salt      []byte `cbor:"9,keyasint"`
	Access    access `cbor:"10,keyasint"`
	// Check is sealed data (both layers) of a fixed value: it proves the
	// unlock secret at Open. Its outer layer's additional data commits
	// every other field of the state.
	Check []byte `cbor:"11,keyasint"`
}

func (s *state) validate() error {
	switch {
	case s.Version != stateVersion:
		return fmt.Errorf("%w: unknown platform state version %d", backend.ErrState, s.Version)
	case s.Scheme != schemeAES && s.Scheme != schemeECIES:
		return fmt.Errorf("%w: unknown seal scheme %d", backend.ErrState, s.Scheme)
	case len(s.StoreID) != storeIDSize:
		return fmt.Errorf("%w: store id of %d bytes", backend.ErrState, len(s.StoreID))
	case !hardwareLevel(s.Level) && s.Level != bridge.LevelSoftware:
		return fmt.Errorf("%w: unknown security level %q", backend.ErrState, s.Level)
	case (s.Scheme == schemeECIES) != (len(s.StorePub) > 0):
		return fmt.Errorf("%w: store public key present without ECIES, or missing with it", backend.ErrState)
	case len(s.Salt) != saltSize:
		return fmt.Errorf("%w: salt of %d bytes", backend.ErrState, len(s.Salt))
	case s.Access.Auth < 0 || s.Access.Auth > bridge.AuthBiometric|bridge.AuthDeviceCredential:
		return fmt.Errorf("%w: unknown authentication kinds %d", backend.ErrState, s.Access.Auth)
	case s.Access.ValiditySecs < 0 || s.Access.ValiditySecs > maxValidity:
		return fmt.Errorf("%w: authentication validity %ds out of bounds", backend.ErrState, s.Access.ValiditySecs)
	case len(s.Access.DataProtection) > 64:
		return fmt.Errorf("%w: data protection class too long", backend.ErrState)
	case len(s.Check) < 1+nonceSize+tagSize:
		return fmt.Errorf("%w: check value too short", backend.ErrState)
	}
	if s.Scheme == schemeECIES {
		if _, err := ecdh.P256().NewPublicKey(s.StorePub); err != nil {
			return fmt.Errorf("%w: store public key: %v", backend.ErrState, err)
		}
	}
	return kdfParams{Time: s.Time, MemoryKiB: s.MemoryKiB, Threads: s.Threads}.check()
}

func parseState(b []byte) (*state, error) {
	var s state
	if err := wire.Unmarshal(b, &s, maxStateSize); err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrState, err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// commitment is SHA-256 over the state without its check value; the check
// value's outer layer binds it, so that a state whose fields were changed
// does not open.
func (s *state) commitment() []byte {
	c := *s
	c.Check = nil
	b, _ := wire.Marshal(c)
	h := sha256.Sum256(append([]byte("enigm/v1/platform/state\x00"), b...))
	return h[:]
}

// Aliases of a store's keys in the hardware: all start with storePrefix.
func storePrefix(storeID []byte) string { return "enigm." + hex.EncodeToString(storeID) + "." }

func storeAlias(storeID []byte) string { return storePrefix(storeID) + "store" }

func bindingAlias(storeID, keyID []byte) string {
	return storePrefix(storeID) + "bind." + hex.EncodeToString(keyID)
}

// bindingBlob names a binding key; it is not secret.
type bindingBlob struct {
	Version uint8  `cbor:"1,keyasint"`
	StoreID []byte `cbor:"2,keyasint"`
	KeyID   []byte `cbor:"3,keyasint"`
	Public  []byte `cbor:"4,keyasint"`
}

func parseBindingBlob(b []byte) (*bindingBlob, error) {
	var bb bindingBlob
	if err := wire.Unmarshal(b, &bb, maxBlobSize); err != nil {
		return nil, fmt.Errorf("%w: binding key blob: %v", backend.ErrState, err)
	}
	if bb.Version != blobVersion || len(bb.StoreID) != storeIDSize || len(bb.KeyID) != keyIDSize || len(bb.Public) != pointSize {
		return nil, fmt.Errorf("%w: binding key blob has a wrong version or field size", backend.ErrState)
	}
	if _, err := ecdh.P256().NewPublicKey(bb.Public); err != nil {
		return nil, fmt.Errorf("%w: binding key blob: %v", backend.ErrState, err)
	}
	return &bb, nil
}

// Additional data of the two layers of sealed data.
func innerAD(storeID []byte, label string) []byte {
	return labelAD("enigm/v1/platform/seal/inner\x00", storeID, label)
}

func outerAD(storeID []byte, label string) []byte {
	return labelAD("enigm/v1/platform/seal/outer\x00", storeID, label)
}

func labelAD(domain string, storeID []byte, label string) []byte {
	var b bytes.Buffer
	b.WriteString(domain)
	b.Write(storeID)
	b.WriteString(label)
	return b.Bytes()
}

// checkLabel is the seal label of the check value. Callers' labels cannot
// collide with it: its outer additional data carries the state commitment
// as well.
const checkLabel = "enigm/v1/platform/check"

// checkPlain is the plaintext of the check value.
var checkPlain = []byte("enigm/v1/platform/check-value\x00\x00\x00")
