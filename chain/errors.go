package chain

import (
	"errors"
	"fmt"
)

// Code is an error of package chain. Every error this package returns
// wraps exactly one Code (and sometimes also a hybrid or wire error);
// callers compare with errors.Is (errors.Is(err, chain.ErrStale)), never
// with the message text. A verifier that sees any error must not trust the
// link or any link after it.
//
// A Code is both the error and its stable name: String gives the
// snake_case wire name ("no_device_approval") that the command API sends
// in "chain_error" and ParseCode reads back, and Error gives the message.
// Codes are comparable values, so errors.Is matches them with == and Code
// needs no Is method. The wire names are a contract: never rename one, add
// new codes at the end. The numeric values are not part of any format;
// only the names leave the process.
type Code uint16

// The codes, in the order of the table below.
const (
	_ Code = iota

	// Encoding and structure.

	// ErrMalformed: the bytes are not a strict, canonical encoding of the
	// expected structure (duplicate or unknown map keys, indefinite
	// lengths, tags, floats, trailing data, nesting too deep), or a field
	// is out of its allowed range.
	ErrMalformed
	// ErrTooLarge: input exceeds a bound in limits.go.
	ErrTooLarge
	// ErrVersion: the link format version is not one this code knows.
	ErrVersion
	// ErrUnknownType: the link type is not one this code knows.
	ErrUnknownType
	// ErrSuite: the genesis names a cryptographic suite this code does not
	// implement.
	ErrSuite
	// ErrMissingPQ: a key or signature lacks its ML-DSA-65 half. It also
	// wraps hybrid.ErrMissingPQ.
	ErrMissingPQ
	// ErrBadKey: a public key does not parse (wrong size, not on the
	// curve, invalid ML-KEM or ML-DSA encoding).
	ErrBadKey

	// Position in the chain.

	// ErrNoGenesis: a chain does not start with a genesis link.
	ErrNoGenesis
	// ErrGenesisNotFirst: a genesis link appears after the first position.
	ErrGenesisNotFirst
	// ErrAccount: a link names another account than the chain's.
	ErrAccount
	// ErrSequence: a link's sequence number is not head+1.
	ErrSequence
	// ErrPrevHash: a link's previous-hash is not the hash of the head.
	ErrPrevHash
	// ErrTimeRegression: a link's timestamp is before its predecessor's.
	ErrTimeRegression
	// ErrFutureTimestamp: a link's timestamp is more than MaxClockSkew
	// (or the WithMaxSkew bound an appender set) after the verifier's time.
	ErrFutureTimestamp
	// ErrStale: a link is older than the WithMaxAge bound an appender set.
	ErrStale
	// ErrChainTooLong: more links than MaxLinksPerCall in one call.
	ErrChainTooLong

	// Views of a chain.

	// ErrRollback: a view ends before a head the caller verified earlier.
	ErrRollback
	// ErrFork: a view holds another link at the sequence number of a
	// verified head, or does not continue from it.
	ErrFork

	// Signatures.

	// ErrBadSignature: a signature does not verify under the key and
	// signing context its role requires. Forged signatures, signatures
	// made under another context (role or link type), and signatures over
	// other bytes all end here.
	ErrBadSignature
	// ErrMissingSignature: a signature the link type requires is absent
	// (for example the new device's proof of possession).
	ErrMissingSignature
	// ErrUnexpectedSignature: a signature in a role the link type does not
	// take, or two signatures in one role.
	ErrUnexpectedSignature
	// ErrNoDeviceApproval: a device would join without the approval of an
	// active device (a ghost device); the organisation key alone, or with
	// only the new device, never adds a device.
	ErrNoDeviceApproval
	// ErrAdminApprovalRequired: policy requires the organisation's
	// counter-signature and it is missing.
	ErrAdminApprovalRequired
	// ErrSignerUnknown: a signature names a device the account has never
	// had (or has not had yet at this point of the chain).
	ErrSignerUnknown
	// ErrSignerRevoked: a signature names a revoked or retired device;
	// such devices sign nothing valid.
	ErrSignerRevoked
	// ErrWrongSigner: the signing device is active but not the one the
	// link type requires (rotate_keys and replace_device are signed by the
	// device they change).
	ErrWrongSigner
	// ErrNotManaged: an organisation signature or set_policy on an account
	// without an organisation.
	ErrNotManaged

	// Enrollment approvals.

	// ErrApprovalAccount: an approval made for another account.
	ErrApprovalAccount
	// ErrApprovalHead: an approval made against another chain head (stale
	// or replayed); approve again against the current head.
	ErrApprovalHead
	// ErrApprovalRequest: an approval made for another enrollment request
	// (nonce or pairing code).
	ErrApprovalRequest
	// ErrApprovalDevice: an approval made for another device record (the
	// approval's body hash differs while account, head and request match).
	ErrApprovalDevice

	// Devices.

	// ErrDeviceExists: the device id is already active in the account.
	ErrDeviceExists
	// ErrDeviceIDReused: the device id belonged to a revoked or retired
	// device; ids are never re-added.
	ErrDeviceIDReused
	// ErrKeyReused: a public key the account has used before (by any
	// device, at any time) appears again.
	ErrKeyReused
	// ErrUnknownDevice: the link names a device the account does not have.
	ErrUnknownDevice
	// ErrDeviceNotActive: the link acts on a revoked or retired device.
	ErrDeviceNotActive
	// ErrTooManyDevices: the account would exceed MaxDevices.
	ErrTooManyDevices
	// ErrProtectionLevel: the device's protection level is below the
	// policy's minimum, or the level is not a known one.
	ErrProtectionLevel
	// ErrAttestation: the attestation verifier rejected the evidence.
	ErrAttestation
	// ErrAttestationRequired: policy requires verified attestation and the
	// device has none, or no verifier was configured.
	ErrAttestationRequired
	// ErrPolicy: a policy is invalid (out of bounds, or admin requirements
	// on an account without an organisation).
	ErrPolicy

	// Recovery.

	// ErrRecoveryPending: a recovery request while another is pending.
	ErrRecoveryPending
	// ErrNoPendingRecovery: a veto or recover that names no pending request.
	ErrNoPendingRecovery
	// ErrRecoveryTooEarly: recover before the waiting period has elapsed
	// (measured on link timestamps).
	ErrRecoveryTooEarly
	// ErrRecoveryVetoed: recover for a request that was vetoed, cancelled
	// by a recovery key rotation, or already completed.
	ErrRecoveryVetoed
	// ErrRecoveryCode: a recovery code that does not parse or whose
	// checksum fails (a typo).
	ErrRecoveryCode
)

// codes is the one table of names and messages; every Code above has an
// entry (TestCodeTable).
var codes = [...]struct{ name, msg string }{
	ErrMalformed:             {"malformed", "chain: malformed encoding"},
	ErrTooLarge:              {"too_large", "chain: input exceeds a size limit"},
	ErrVersion:               {"version", "chain: unsupported link format version"},
	ErrUnknownType:           {"unknown_type", "chain: unknown link type"},
	ErrSuite:                 {"suite", "chain: unsupported cryptographic suite"},
	ErrMissingPQ:             {"missing_pq", "chain: post-quantum half missing"},
	ErrBadKey:                {"bad_key", "chain: invalid public key"},
	ErrNoGenesis:             {"no_genesis", "chain: chain does not start with genesis"},
	ErrGenesisNotFirst:       {"genesis_not_first", "chain: genesis link after the start of the chain"},
	ErrAccount:               {"account", "chain: link belongs to another account"},
	ErrSequence:              {"sequence", "chain: sequence number does not follow the head"},
	ErrPrevHash:              {"prev_hash", "chain: previous hash does not match the head"},
	ErrTimeRegression:        {"time_regression", "chain: timestamp goes backwards"},
	ErrFutureTimestamp:       {"future_timestamp", "chain: timestamp is in the future"},
	ErrStale:                 {"stale", "chain: link timestamp too old to append"},
	ErrChainTooLong:          {"chain_too_long", "chain: too many links for one verification call"},
	ErrRollback:              {"rollback", "chain: view rolls back a verified head"},
	ErrFork:                  {"fork", "chain: view forks from a verified head"},
	ErrBadSignature:          {"bad_signature", "chain: signature does not verify"},
	ErrMissingSignature:      {"missing_signature", "chain: required signature missing"},
	ErrUnexpectedSignature:   {"unexpected_signature", "chain: unexpected signature"},
	ErrNoDeviceApproval:      {"no_device_approval", "chain: no active device approved the new device"},
	ErrAdminApprovalRequired: {"admin_approval_required", "chain: organisation counter-signature required by policy"},
	ErrSignerUnknown:         {"signer_unknown", "chain: signing device is not in the account"},
	ErrSignerRevoked:         {"signer_revoked", "chain: signing device is revoked or retired"},
	ErrWrongSigner:           {"wrong_signer", "chain: link signed by the wrong device"},
	ErrNotManaged:            {"not_managed", "chain: account has no organisation"},
	ErrApprovalAccount:       {"approval_account", "chain: approval was made for another account"},
	ErrApprovalHead:          {"approval_head", "chain: approval was made against another chain head"},
	ErrApprovalRequest:       {"approval_request", "chain: approval was made for another enrollment request"},
	ErrApprovalDevice:        {"approval_device", "chain: approval was made for another device record"},
	ErrDeviceExists:          {"device_exists", "chain: device is already in the account"},
	ErrDeviceIDReused:        {"device_id_reused", "chain: device id of a revoked or retired device"},
	ErrKeyReused:             {"key_reused", "chain: public key used before in this account"},
	ErrUnknownDevice:         {"unknown_device", "chain: no such device in the account"},
	ErrDeviceNotActive:       {"device_not_active", "chain: device is not active"},
	ErrTooManyDevices:        {"too_many_devices", "chain: too many devices"},
	ErrProtectionLevel:       {"protection_level", "chain: protection level not allowed"},
	ErrAttestation:           {"attestation", "chain: attestation evidence rejected"},
	ErrAttestationRequired:   {"attestation_required", "chain: verified attestation required by policy"},
	ErrPolicy:                {"policy", "chain: invalid policy"},
	ErrRecoveryPending:       {"recovery_pending", "chain: a recovery request is already pending"},
	ErrNoPendingRecovery:     {"no_pending_recovery", "chain: no such pending recovery request"},
	ErrRecoveryTooEarly:      {"recovery_too_early", "chain: recovery waiting period has not elapsed"},
	ErrRecoveryVetoed:        {"recovery_vetoed", "chain: recovery request was vetoed, cancelled or completed"},
	ErrRecoveryCode:          {"recovery_code", "chain: invalid recovery code"},
}

// Error returns the message, for example "chain: link timestamp too old
// to append".
func (c Code) Error() string {
	if !c.known() {
		return fmt.Sprintf("chain: unknown error code %d", uint16(c))
	}
	return codes[c].msg
}

// String returns the stable snake_case wire name, for example
// "no_device_approval"; an unknown code has the name "unknown".
func (c Code) String() string {
	if !c.known() {
		return "unknown"
	}
	return codes[c].name
}

func (c Code) known() bool { return c > 0 && int(c) < len(codes) }

// Codes returns every code, in table order.
func Codes() []Code {
	out := make([]Code, 0, len(codes)-1)
	for c := Code(1); int(c) < len(codes); c++ {
		out = append(out, c)
	}
	return out
}

// ParseCode returns the code whose wire name is name.
func ParseCode(name string) (Code, bool) {
	for _, c := range Codes() {
		if codes[c].name == name {
			return c, true
		}
	}
	return 0, false
}

// CodeOf returns the code err wraps, or false when it wraps none. Where an
// error wraps two codes (a specific one and ErrMalformed), the first in
// table order other than ErrMalformed wins.
func CodeOf(err error) (Code, bool) {
	malformed := false
	for _, c := range Codes() {
		if errors.Is(err, c) {
			if c != ErrMalformed {
				return c, true
			}
			malformed = true
		}
	}
	if malformed {
		return ErrMalformed, true
	}
	return 0, false
}

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
