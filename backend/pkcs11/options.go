package pkcs11

import (
	"errors"
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
	// Scheme forces a protection scheme for Provision (SchemeAESGCM,
	// SchemeAESCBCHMAC, SchemeP256ECDH). Empty: the first of them the
	// token offers. Open reads the scheme from the state.
	Scheme string
	// PINOnlyDestroy accepts a token that keeps every key it generates for
	// the backend behind the PIN. (A PIV card does not let the backend
	// generate keys at all, with the PIN only: use AdoptKeyID there.) Such
	// a token cannot hold the store's public destroy
	// key, so Destroy without the PIN cannot remove anything: after the
	// revocation of a locked device the store's keys stay on the token,
	// usable by whoever has the PIN and a copy of the sealed data, until
	// Purge with the PIN. With it set, Capabilities does not claim
	// backend.GateDestroy, so the keystore's status shows it (the chain's
	// device record carries only the protection level). A token that can hold a public destroy key still gets one.
	PINOnlyDestroy bool
	// AdoptKeyID, when set, makes Provision adopt the existing P-256
	// private key with this CKA_ID instead of generating keys: the way PIV
	// tokens are provisioned, where the user creates the key in a slot with
	// the vendor's tool (ykman, yubico-piv-tool) and the PKCS#11 module
	// names it by a one-byte id (ykcs11 and OpenSC: 01 = slot 9a, 02 = 9c,
	// 03 = 9d, 04 = 9e). The store uses scheme p256-ecdh with that one key
	// (Scheme may be empty or SchemeP256ECDH) and creates, and Destroy and
	// Purge delete, no token object: the adopted key stays on the token
	// after revocation; wipe the slot with the vendor's tool. So
	// Capabilities claims neither backend.GateDestroy nor resident keys.
	// Provision refuses a key that is missing, ambiguous (two private keys
	// with the id), not EC P-256, extractable, readable, not generated on
	// the token, or that does not compute ECDH with its public key
	// ([ErrAdoptedKey]). Open reads the id from the state.
	AdoptKeyID []byte
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

// ErrMechanisms reports a token that lacks the mechanisms of every
// protection scheme (or of the one Options.Scheme names). The message
// lists every missing mechanism of every scheme at once.
var ErrMechanisms = errors.New("pkcs11: the token lacks mechanisms the backend needs")

// ErrNoPublicObjects reports a token that keeps no key usable without the
// PIN (tpm2-pkcs11 is one): the store's destroy key cannot exist there,
// so Destroy on revocation could not work, and Provision refuses. For a
// TPM use the tpm backend (--backend tpm), which seals to the TPM directly
// and destroys by evicting the sealed objects.
var ErrNoPublicObjects = errors.New("pkcs11: the token cannot hold the store's destroy key")

// ErrAdoptedKey reports that the key Options.AdoptKeyID names (or the one
// a store adopted) cannot be used: missing (the message lists the token's
// EC private keys by id and label), ambiguous, not EC P-256, extractable
// or readable, not generated on the token, or, at Open, replaced by
// another key under the same id. Nothing stored is changed.
var ErrAdoptedKey = errors.New("pkcs11: the adopted key cannot be used")

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

// Protection schemes (Options.Scheme), in the order Provision tries them
// when Options.Scheme is empty. Which one a token can host is read from
// its mechanism list, never from its name; docs/design/pkcs11.md has the
// table of token kinds and schemes.
const (
	// SchemeAESGCM: two layers of AES-256-GCM on the token (destroy key,
	// then the label's wrapping key). Needs CKM_AES_KEY_GEN, CKM_AES_GCM.
	SchemeAESGCM = "aes-gcm"
	// SchemeAESCBCHMAC: two layers of AES-256-CBC-PAD and an HMAC-SHA256
	// tag, all on the token. Needs CKM_AES_KEY_GEN, CKM_AES_CBC_PAD,
	// CKM_GENERIC_SECRET_KEY_GEN, CKM_SHA256_HMAC.
	SchemeAESCBCHMAC = "aes-cbc-hmac"
	// SchemeP256ECDH: AES-256-GCM in software under a key derived (HKDF)
	// from ECDH with two P-256 keys on the token, for PIV-style tokens
	// without symmetric mechanisms. Needs CKM_EC_KEY_PAIR_GEN,
	// CKM_ECDH1_DERIVE.
	SchemeP256ECDH = "p256-ecdh"
)
