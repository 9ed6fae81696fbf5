package chain

import (
	"errors"
	"fmt"
)

// Errors. Every error this package returns wraps exactly one of these (and
// sometimes also a hybrid or wire error); callers compare with errors.Is,
// never with the message text. A verifier that sees any error must not
// trust the link or any link after it.
var (
	// Encoding and structure.

	// ErrMalformed: the bytes are not a strict, canonical encoding of the
	// expected structure (duplicate or unknown map keys, indefinite
	// lengths, tags, floats, trailing data, nesting too deep), or a field
	// is out of its allowed range.
	ErrMalformed = errors.New("chain: malformed encoding")
	// ErrTooLarge: input exceeds a bound in limits.go.
	ErrTooLarge = errors.New("chain: input exceeds a size limit")
	// ErrVersion: the link format version is not one this code knows.
	ErrVersion = errors.New("chain: unsupported link format version")
	// ErrUnknownType: the link type is not one this code knows.
	ErrUnknownType = errors.New("chain: unknown link type")
	// ErrSuite: the genesis names a cryptographic suite this code does not
	// implement.
	ErrSuite = errors.New("chain: unsupported cryptographic suite")
	// ErrMissingPQ: a key or signature lacks its ML-DSA-65 half. It also
	// wraps hybrid.ErrMissingPQ.
	ErrMissingPQ = errors.New("chain: post-quantum half missing")
	// ErrBadKey: a public key does not parse (wrong size, not on the
	// curve, invalid ML-KEM or ML-DSA encoding).
	ErrBadKey = errors.New("chain: invalid public key")

	// Position in the chain.

	// ErrNoGenesis: a chain does not start with a genesis link.
	ErrNoGenesis = errors.New("chain: chain does not start with genesis")
	// ErrGenesisNotFirst: a genesis link appears after the first position.
	ErrGenesisNotFirst = errors.New("chain: genesis link after the start of the chain")
	// ErrAccount: a link names another account than the chain's.
	ErrAccount = errors.New("chain: link belongs to another account")
	// ErrSequence: a link's sequence number is not head+1.
	ErrSequence = errors.New("chain: sequence number does not follow the head")
	// ErrPrevHash: a link's previous-hash is not the hash of the head.
	ErrPrevHash = errors.New("chain: previous hash does not match the head")
	// ErrTimeRegression: a link's timestamp is before its predecessor's.
	ErrTimeRegression = errors.New("chain: timestamp goes backwards")
	// ErrFutureTimestamp: a link's timestamp is more than MaxClockSkew
	// (or the WithMaxSkew bound an appender set) after the verifier's time.
	ErrFutureTimestamp = errors.New("chain: timestamp is in the future")
	// ErrStale: a link is older than the WithMaxAge bound an appender set.
	ErrStale = errors.New("chain: link timestamp too old to append")
	// ErrChainTooLong: more links than MaxLinksPerCall in one call.
	ErrChainTooLong = errors.New("chain: too many links for one verification call")

	// Views of a chain.

	// ErrRollback: a view ends before a head the caller verified earlier.
	ErrRollback = errors.New("chain: view rolls back a verified head")
	// ErrFork: a view holds another link at the sequence number of a
	// verified head, or does not continue from it.
	ErrFork = errors.New("chain: view forks from a verified head")

	// Signatures.

	// ErrBadSignature: a signature does not verify under the key and
	// signing context its role requires. Forged signatures, signatures
	// made under another context (role or link type), and signatures over
	// other bytes all end here.
	ErrBadSignature = errors.New("chain: signature does not verify")
	// ErrMissingSignature: a signature the link type requires is absent
	// (for example the new device's proof of possession).
	ErrMissingSignature = errors.New("chain: required signature missing")
	// ErrUnexpectedSignature: a signature in a role the link type does not
	// take, or two signatures in one role.
	ErrUnexpectedSignature = errors.New("chain: unexpected signature")
	// ErrNoDeviceApproval: a device would join without the approval of an
	// active device (a ghost device); the organisation key alone, or with
	// only the new device, never adds a device.
	ErrNoDeviceApproval = errors.New("chain: no active device approved the new device")
	// ErrAdminApprovalRequired: policy requires the organisation's
	// counter-signature and it is missing.
	ErrAdminApprovalRequired = errors.New("chain: organisation counter-signature required by policy")
	// ErrSignerUnknown: a signature names a device the account has never
	// had (or has not had yet at this point of the chain).
	ErrSignerUnknown = errors.New("chain: signing device is not in the account")
	// ErrSignerRevoked: a signature names a revoked or retired device;
	// such devices sign nothing valid.
	ErrSignerRevoked = errors.New("chain: signing device is revoked or retired")
	// ErrWrongSigner: the signing device is active but not the one the
	// link type requires (rotate_keys and replace_device are signed by the
	// device they change).
	ErrWrongSigner = errors.New("chain: link signed by the wrong device")
	// ErrNotManaged: an organisation signature or set_policy on an account
	// without an organisation.
	ErrNotManaged = errors.New("chain: account has no organisation")

	// Enrollment approvals.

	// ErrApprovalAccount: an approval made for another account.
	ErrApprovalAccount = errors.New("chain: approval was made for another account")
	// ErrApprovalHead: an approval made against another chain head (stale
	// or replayed); approve again against the current head.
	ErrApprovalHead = errors.New("chain: approval was made against another chain head")
	// ErrApprovalRequest: an approval made for another enrollment request
	// (nonce or pairing code).
	ErrApprovalRequest = errors.New("chain: approval was made for another enrollment request")
	// ErrApprovalDevice: an approval made for another device record (the
	// approval's body hash differs while account, head and request match).
	ErrApprovalDevice = errors.New("chain: approval was made for another device record")

	// Devices.

	// ErrDeviceExists: the device id is already active in the account.
	ErrDeviceExists = errors.New("chain: device is already in the account")
	// ErrDeviceIDReused: the device id belonged to a revoked or retired
	// device; ids are never re-added.
	ErrDeviceIDReused = errors.New("chain: device id of a revoked or retired device")
	// ErrKeyReused: a public key the account has used before (by any
	// device, at any time) appears again.
	ErrKeyReused = errors.New("chain: public key used before in this account")
	// ErrUnknownDevice: the link names a device the account does not have.
	ErrUnknownDevice = errors.New("chain: no such device in the account")
	// ErrDeviceNotActive: the link acts on a revoked or retired device.
	ErrDeviceNotActive = errors.New("chain: device is not active")
	// ErrTooManyDevices: the account would exceed MaxDevices.
	ErrTooManyDevices = errors.New("chain: too many devices")
	// ErrProtectionLevel: the device's protection level is below the
	// policy's minimum, or the level is not a known one.
	ErrProtectionLevel = errors.New("chain: protection level not allowed")
	// ErrAttestation: the attestation verifier rejected the evidence.
	ErrAttestation = errors.New("chain: attestation evidence rejected")
	// ErrAttestationRequired: policy requires verified attestation and the
	// device has none, or no verifier was configured.
	ErrAttestationRequired = errors.New("chain: verified attestation required by policy")
	// ErrPolicy: a policy is invalid (out of bounds, or admin requirements
	// on an account without an organisation).
	ErrPolicy = errors.New("chain: invalid policy")

	// Recovery.

	// ErrRecoveryPending: a recovery request while another is pending.
	ErrRecoveryPending = errors.New("chain: a recovery request is already pending")
	// ErrNoPendingRecovery: a veto or recover that names no pending request.
	ErrNoPendingRecovery = errors.New("chain: no such pending recovery request")
	// ErrRecoveryTooEarly: recover before the waiting period has elapsed
	// (measured on link timestamps).
	ErrRecoveryTooEarly = errors.New("chain: recovery waiting period has not elapsed")
	// ErrRecoveryVetoed: recover for a request that was vetoed, cancelled
	// by a recovery key rotation, or already completed.
	ErrRecoveryVetoed = errors.New("chain: recovery request was vetoed, cancelled or completed")
	// ErrRecoveryCode: a recovery code that does not parse or whose
	// checksum fails (a typo).
	ErrRecoveryCode = errors.New("chain: invalid recovery code")
)

// LinkError reports which link of a chain failed. It wraps the cause.
type LinkError struct {
	Index int      // position in the slice given to the call
	Seq   uint64   // the link's sequence number
	Type  LinkType // the link's type
	Err   error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("link %d (seq %d, %s): %v", e.Index, e.Seq, e.Type, e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
