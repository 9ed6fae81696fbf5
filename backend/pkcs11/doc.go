// Package pkcs11 is the PKCS#11 protection backend: the keystore's wrapping
// keys are sealed by AES-256 keys generated on a PKCS#11 token (a smart
// card, USB token or HSM; SoftHSM2 in tests), and the hardware binding key
// is an EC P-256 key pair on the token. The token PIN is the unlock secret.
//
// # What lives on the token
//
// Every store (one Provision) has a random 16-byte store id; all its token
// objects carry the CKA_LABEL "enigm:<hex store id>" and a CKA_ID derived
// from the store id, the object's role and its name:
//
//   - one destroy key: AES-256, CKA_PRIVATE=false, so that [Backend.Destroy]
//     can delete it without the PIN;
//   - one wrapping key per seal label (per key class), AES-256,
//     CKA_PRIVATE=true, created on the first Seal under that label, so key
//     classes are separated by distinct hardware keys;
//   - binding keys: EC P-256 key pairs, both halves CKA_PRIVATE=true.
//
// All keys are generated on the token with CKA_TOKEN=true,
// CKA_SENSITIVE=true, CKA_EXTRACTABLE=false and CKA_MODIFIABLE=false, with
// only the usage flags they need; the backend reads the attributes back
// (including CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE and CKA_LOCAL) and
// refuses keys that do not have them.
//
// # Sealing
//
// Seal encrypts twice on the token with CKM_AES_GCM, the store id and the
// label in the additional data of both layers: first under the destroy key,
// then under the label's wrapping key. Unsealing therefore needs the PIN
// (the wrapping key is private) and the destroy key (gone after Destroy).
// Inside the inner layer a software check value (a hash of the store id,
// label and secret) detects a token that returns wrong plaintext, and every
// length the token returns is checked: a misbehaving token yields
// [ErrTokenFault], never other plaintext.
//
// # Binding key
//
// The binding key's [crypto.Signer] signs SHA-256 digests with CKM_ECDSA on
// the token, converts r||s to ASN.1 DER and verifies the signature against
// the public key before returning it.
//
// # Login
//
// PKCS#11 login state belongs to the whole process, per token: while one
// session is logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without
// checking the PIN. This package therefore keeps, per token, a count of its
// logged-in sessions and a keyed hash of the PIN that logged in (under a
// random per-process key, never stored), and checks later Opens against it.
// The last session to close logs out.
//
// # Destroy
//
// Destroy needs no PIN: it deletes the destroy key, the store's only object
// visible without login, which makes every sealed wrapping key of the store
// unrecoverable, from any copy, even with the PIN. If the process is logged
// in to the token at that moment (the keystore is unlocked), Destroy deletes
// the private objects too; otherwise they stay on the token, unusable for
// unsealing, until [Backend.Purge] removes them with the PIN.
//
// The package needs cgo (github.com/miekg/pkcs11 loads the module with
// dlopen). Built without cgo, [New] returns an error.
package pkcs11
