// Package pkcs11 is the PKCS#11 protection backend: the keystore's wrapping
// keys are sealed with keys generated on a PKCS#11 token (a smart card, PIV
// security key, USB token or HSM; SoftHSM2 and openCryptoki in tests), and
// where the token signs with EC the hardware binding key is an EC P-256
// key pair on the token. The token PIN is the unlock secret.
//
// # Protection schemes
//
// Provision chooses how the token protects a wrapping key from the
// token's mechanism list (never from its name), or takes the one
// Options.Scheme names:
//
//   - [SchemeAESGCM]: AES-256-GCM on the token, twice: under the store's
//     destroy key, then under the label's wrapping key.
//   - [SchemeAESCBCHMAC], where GCM is missing: AES-256-CBC-PAD on the
//     token under the same two keys, then an HMAC-SHA256 tag on the token
//     under the label's MAC key, checked before anything is decrypted.
//   - [SchemeP256ECDH], for PIV-style tokens without symmetric mechanisms:
//     AES-256-GCM in software under a key derived with HKDF-SHA256 (salt:
//     the store id; info: the label, the ephemeral key and both token
//     keys) from two ECDH secrets the token computes, with the label's
//     P-256 key and with the destroy key.
//   - The same with one key the user made on a PIV token with the vendor's
//     tool (a slot's key; generating one needs the token's management
//     key), adopted by its CKA_ID (Options.AdoptKeyID). The backend then
//     creates and destroys no token object: the adopted key stays on the
//     token after revocation, and Capabilities (and CapabilitiesOf the
//     store's state) claim no backend.GateDestroy.
//
// Each binds the store id and the label and is authenticated; a software
// check value (schemes 1 and 2) or the AEAD under a derived key (scheme 3)
// catches a token that answers with wrong plaintext or a wrong secret. A
// token that offers none fails with [ErrMechanisms], listing every missing
// mechanism of every scheme at once.
//
// # What lives on the token
//
// Every store (one Provision) has a random 16-byte store id; all its token
// objects carry the CKA_LABEL "enigm:<hex store id>" and a CKA_ID derived
// from the store id, the object's role and its name: one destroy key
// (CKA_PRIVATE=false, so that [Backend.Destroy] can delete it without the
// PIN); per seal label (key class) a wrapping key (and, in the CBC scheme, a
// MAC key), private, created on the first Seal under that label, so key
// classes are separated by distinct hardware keys; binding key pairs,
// private. All keys are generated on the token as token objects,
// sensitive, not extractable and not modifiable, with only the usage they
// need; the backend reads the attributes back (including
// CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE and CKA_LOCAL) and refuses
// keys that do not have them. Templates that a token rejects because of
// explicit false usage flags are retried without them.
//
// # Binding key
//
// The binding key's [crypto.Signer] signs SHA-256 digests with CKM_ECDSA on
// the token, converts r||s to ASN.1 DER and verifies the signature against
// the public key before returning it. A token without CKM_ECDSA has no
// binding key: its sessions do not implement backend.BindingKeys and
// Capabilities does not list ecdsa-p256.
//
// # Login
//
// Before any C_Login the PIN length is checked against the range the token
// reports and a token whose PIN is locked is not tried, so neither costs
// one of the token's tries; after a wrong PIN the error says what the
// token reports about tries left. PKCS#11 login state belongs to the whole
// process, per token: while one session is logged in, C_Login answers
// CKR_USER_ALREADY_LOGGED_IN without checking the PIN. This package
// therefore keeps, per token, a count of its logged-in sessions and a
// keyed hash of the PIN that logged in (under a random per-process key,
// never stored), and checks later Opens against it. The last session to
// close logs out.
//
// # Destroy
//
// Destroy needs no PIN: it deletes the destroy key, the store's only object
// visible without login, which makes every sealed wrapping key of the store
// unrecoverable, from any copy, even with the PIN. If the process is logged
// in to the token at that moment (the keystore is unlocked), Destroy deletes
// the private objects too; otherwise they stay on the token, unusable for
// unsealing, until [Backend.Purge] removes them with the PIN. A token that
// keeps every key behind the PIN (a PIV card) is refused with
// [ErrNoPublicObjects] unless Options.PINOnlyDestroy accepts it; then
// Destroy without the PIN removes nothing and the backend does not claim
// backend.GateDestroy. tpm2-pkcs11 is refused: the tpm backend is the
// route for a TPM.
//
// docs/design/pkcs11.md has the formats, the table of token kinds and what
// each enforces, and the tests.
//
// The package needs cgo (github.com/miekg/pkcs11 loads the module with
// dlopen). Built without cgo, [New] returns an error.
package pkcs11
