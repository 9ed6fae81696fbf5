// Package chain is the account device chain: the signed, append-only record
// of which devices an account trusts, verified identically by every device
// and by Enigm Command. A server or database that is wrong or hostile cannot
// make a device trusted: every change is signed by keys that the account's
// trusted devices, its recovery key or (in addition) its organisation hold.
//
// The package is pure: no I/O, no clock (the caller passes the time), no
// randomness except from an io.Reader the caller passes. It depends on the
// standard library, hybrid and internal/wire only.
//
// # Links
//
// A chain is a sequence of links: genesis, add_device, revoke_device,
// rotate_keys, replace_device, recovery_request, recovery_veto, recover,
// rotate_recovery, set_policy. Each carries the account id (the hash of the
// genesis link), a sequence number, the previous link's hash, a timestamp,
// its type, a type-specific body and signatures. Links are deterministic
// CBOR (internal/wire), decoded strictly by [ParseLink]; every bound is in
// limits.go. docs/design/chain.md gives the formats byte by byte.
//
// # Signatures
//
// Every signature is hybrid Ed25519 + ML-DSA-65 (both halves must verify),
// except the P-256 hardware binding key's. A signature names its [Role];
// the signing context is "enigm/v1/link/<type>/<role>" over the link
// without its signatures ([Link.Payload]), or for enrollment approvals
// "enigm/v1/approval/<type>/<role>" over an [Approval] statement. A
// signature therefore counts in exactly one role of one link type.
//
// The recovery key signs only recovery_request; the device it names joins
// through recover, after the waiting period, unless an active device
// vetoes. docs/design/chain.md §2.2 lists what each key can sign.
//
// # Verification
//
// [Apply] verifies one link against a [State] and returns the next State;
// [VerifyChain] verifies a run of links; [CheckView] tells whether a view of
// the chain extends a head verified earlier or rolls it back or forks it.
// Errors wrap the sentinels in errors.go, one per way a link can be wrong.
// Time is the caller's: a later link may not be older than its predecessor,
// and the party that appends links bounds how far ahead of its clock they
// may be dated ([WithMaxSkew]) and how far behind ([WithMaxAge]); see
// docs/design/chain.md §3.1.
//
// # Building links
//
// [NewGenesis] and [NewDraft] start a link; [Draft.Sign], [Draft.SignDevice],
// [Draft.SignBinding] and [SignApproval] add signatures; [Draft.Link]
// encodes it.
//
// # Recovery codes, SAS and fingerprints
//
// [GenerateRecoveryCode] makes the recovery code from which the recovery
// key is derived ([RecoveryCode.Key]); only its public key enters the chain.
// [SAS] is the short string two devices show during enrollment;
// [Fingerprint] is the account fingerprint contacts compare.
package chain
