package pkcs11

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// Persisted formats. Their encodings are golden-tested; never renumber keys.

// state is the persisted, non-secret state of one store.
type state struct {
	Version uint8  `cbor:"1,keyasint"` // stateVersion
	Scheme  uint8  `cbor:"2,keyasint"` // schemeGCM2, schemeCBCHMAC or schemeECDH
	StoreID []byte `cbor:"3,keyasint"` // storeIDSize random bytes
	Serial  string `cbor:"4,keyasint"` // CK_TOKEN_INFO.serialNumber, trimmed
	Label   string `cbor:"5,keyasint"` // CK_TOKEN_INFO.label, trimmed
	// PINDestroy: the destroy key is private, because the token keeps no
	// key usable without the PIN (Options.PINOnlyDestroy); Destroy without
	// the PIN then removes nothing. Omitted when false.
	PINDestroy bool `cbor:"6,keyasint,omitempty"`
	// KeyID and Public (schemeECDHAdopted only; omitted otherwise): the
	// CKA_ID of the adopted private key and its uncompressed P-256 point,
	// so Open refuses another key put under the same id.
	KeyID  []byte `cbor:"7,keyasint,omitempty"`
	Public []byte `cbor:"8,keyasint,omitempty"`
}

// bindingBlob is the non-secret handle of a binding key.
type bindingBlob struct {
	Version uint8  `cbor:"1,keyasint"` // blobVersion
	StoreID []byte `cbor:"2,keyasint"` // the store the key belongs to
	KeyID   []byte `cbor:"3,keyasint"` // keyIDSize random bytes, names the key pair
	Public  []byte `cbor:"4,keyasint"` // uncompressed P-256 point (65 bytes)
}

const (
	stateVersion = 1
	// schemeGCM2: Seal is AES-256-GCM under the destroy key, then under the
	// label's wrapping key, both on the token.
	schemeGCM2 = 1
	// schemeCBCHMAC: Seal is AES-256-CBC-PAD under the destroy key, then
	// under the label's wrapping key, then HMAC-SHA256 under the label's
	// MAC key, all on the token (tokens without CKM_AES_GCM).
	schemeCBCHMAC = 2
	// schemeECDH: Seal is AES-256-GCM in software under a key derived with
	// HKDF-SHA256 from two ECDH shared secrets, one with the label's P-256
	// key and one with the destroy key, both on the token (tokens with EC
	// but no symmetric mechanisms, PIV style).
	schemeECDH = 3
	// schemeECDHAdopted: as schemeECDH, with one P-256 key that the user
	// created on the token (a PIV slot) and the backend adopted by its
	// CKA_ID; the backend creates no token object (adopt.go).
	schemeECDHAdopted = 4
	// maxAdoptIDSize bounds the CKA_ID of an adopted key (PIV: 1 byte).
	maxAdoptIDSize = 64
	blobVersion    = 1
	storeIDSize    = 16
	keyIDSize      = 16
	objectIDSize   = 16
	maxSerial      = 16  // CK_TOKEN_INFO.serialNumber is 16 bytes
	maxLabel       = 32  // CK_TOKEN_INFO.label is 32 bytes
	maxStateSize   = 256 // 128 before schemeECDHAdopted; only a decoding bound
	maxBlobSize    = 160
	pointSize      = 65
)

func (s *state) validate() error {
	switch {
	case s.Version != stateVersion:
		return fmt.Errorf("%w: unknown pkcs11 state version %d", backend.ErrState, s.Version)
	case s.Scheme < schemeGCM2 || s.Scheme > schemeECDHAdopted:
		return fmt.Errorf("%w: unknown pkcs11 seal scheme %d", backend.ErrState, s.Scheme)
	case len(s.StoreID) != storeIDSize:
		return fmt.Errorf("%w: store id has %d bytes, want %d", backend.ErrState, len(s.StoreID), storeIDSize)
	case s.Serial == "" || len(s.Serial) > maxSerial || !printable(s.Serial):
		return fmt.Errorf("%w: token serial number is empty, too long or not printable", backend.ErrState)
	case len(s.Label) > maxLabel || !utf8.ValidString(s.Label):
		return fmt.Errorf("%w: token label is too long or not UTF-8", backend.ErrState)
	case s.Scheme != schemeECDHAdopted:
		if s.KeyID != nil || s.Public != nil {
			return fmt.Errorf("%w: an adopted key id in a state of scheme %d", backend.ErrState, s.Scheme)
		}
		return nil
	case len(s.KeyID) == 0 || len(s.KeyID) > maxAdoptIDSize:
		return fmt.Errorf("%w: adopted key id has %d bytes, want 1 to %d", backend.ErrState, len(s.KeyID), maxAdoptIDSize)
	case s.PINDestroy:
		return fmt.Errorf("%w: a store on an adopted key has no destroy key", backend.ErrState)
	case len(s.Public) != pointSize:
		return fmt.Errorf("%w: adopted public key has %d bytes, want %d", backend.ErrState, len(s.Public), pointSize)
	}
	if _, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), s.Public); err != nil {
		return fmt.Errorf("%w: adopted public key: %v", backend.ErrState, err)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
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

func (b *bindingBlob) validate() (*ecdsa.PublicKey, error) {
	switch {
	case b.Version != blobVersion:
		return nil, fmt.Errorf("%w: unknown binding key blob version %d", backend.ErrState, b.Version)
	case len(b.StoreID) != storeIDSize || len(b.KeyID) != keyIDSize:
		return nil, fmt.Errorf("%w: binding key blob ids have the wrong size", backend.ErrState)
	case len(b.Public) != pointSize:
		return nil, fmt.Errorf("%w: binding public key has %d bytes, want %d", backend.ErrState, len(b.Public), pointSize)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: binding public key: %v", backend.ErrState, err)
	}
	return pub, nil
}

func parseBindingBlob(in []byte) (*bindingBlob, *ecdsa.PublicKey, error) {
	var b bindingBlob
	if err := wire.Unmarshal(in, &b, maxBlobSize); err != nil {
		return nil, nil, fmt.Errorf("%w: binding key blob: %v", backend.ErrState, err)
	}
	pub, err := b.validate()
	if err != nil {
		return nil, nil, err
	}
	return &b, pub, nil
}

// Sealed data:
//
//	version (1) || iv2 (12) || GCM(wrapping key, iv2, aad2, p1) (len(p1)+16)
//	p1 = iv1 (12) || GCM(destroy key, iv1, aad1, p0) (len(p0)+16)
//	p0 = secret || check (16)
//
// The check value is computed in software, so a token that returns wrong
// plaintext with CKR_OK is caught.
const (
	sealVersion  = 1
	ivSize       = 12
	tagSize      = 16
	checkSize    = 16
	innerMin     = ivSize + tagSize + checkSize                        // len(p1) for an empty secret
	sealOverhead = 1 + ivSize + tagSize + ivSize + tagSize + checkSize // 73
	maxSealed    = MaxSealSize + sealOverhead
)

// parseSealed splits sealed data into the outer IV and ciphertext.
func parseSealed(b []byte) (iv, ct []byte, err error) {
	if len(b) < sealOverhead || len(b) > maxSealed {
		return nil, nil, fmt.Errorf("%w: sealed data has %d bytes, want %d to %d", backend.ErrSealedData, len(b), sealOverhead, maxSealed)
	}
	if b[0] != sealVersion {
		return nil, nil, fmt.Errorf("%w: unknown sealed data version %d", backend.ErrSealedData, b[0])
	}
	return b[1 : 1+ivSize], b[1+ivSize:], nil
}

// Token object naming.
const (
	roleDestroy = 1
	roleKEK     = 2
	roleBinding = 3
	roleMAC     = 4 // schemeCBCHMAC: the label's HMAC key
)

// objectLabel is the CKA_LABEL of every token object of a store.
func objectLabel(storeID []byte) string { return "enigm:" + hex.EncodeToString(storeID) }

// objectID is the CKA_ID of a store's object with a role and name.
func objectID(storeID []byte, role byte, name []byte) []byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/pkcs11/object\x00"))
	h.Write(storeID)
	h.Write([]byte{role})
	h.Write(name)
	return h.Sum(nil)[:objectIDSize]
}

// sealAD is the GCM additional data of a seal layer.
func sealAD(layer string, storeID []byte, label string) []byte {
	ad := make([]byte, 0, 32+len(layer)+len(storeID)+len(label))
	ad = append(ad, "enigm/v1/pkcs11/seal/"...)
	ad = append(ad, layer...)
	ad = append(ad, 0)
	ad = append(ad, storeID...)
	return append(ad, label...)
}

// checkValue binds the secret to the store and label, computed in software.
func checkValue(storeID []byte, label string, secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/pkcs11/check\x00"))
	h.Write(storeID)
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(label)))
	h.Write(n[:])
	h.Write([]byte(label))
	h.Write(secret)
	return h.Sum(nil)[:checkSize]
}
