package chain

import "time"

// Every bound the chain enforces. Decoders check sizes before they parse,
// Apply checks counts before it verifies a signature, so hostile input costs
// at most these amounts of work and memory.
const (
	// MaxDevices bounds the active devices of one account.
	MaxDevices = 64

	// MaxLinkSize bounds the encoding of one link, in bytes. The largest
	// valid link (a managed replace_device with a hardware device and full
	// attestation evidence) is about 33 KiB.
	MaxLinkSize = 48 << 10

	// MaxBodySize bounds the encoded body inside a link.
	MaxBodySize = 24 << 10

	// MaxSignatures bounds the signatures on one link. No link type needs
	// more than four (subject, binding, approving device, organisation).
	MaxSignatures = 4

	// MaxLinksPerCall bounds the links one VerifyChain or CheckView call
	// accepts. Longer histories are verified in steps, each starting from
	// the State the previous step returned.
	MaxLinksPerCall = 10_000

	// MaxSeq bounds sequence numbers, far above any real chain, so that
	// seq+1 can never overflow.
	MaxSeq = 1 << 40

	// MaxAttestationSize bounds the opaque attestation evidence of a device.
	MaxAttestationSize = 16 << 10

	// MaxAttestationTypeLen bounds the attestation evidence type name.
	MaxAttestationTypeLen = 64

	// MaxNameLen bounds a device display name, in bytes of UTF-8.
	MaxNameLen = 64

	// MaxOrgIDLen bounds an organisation id, in bytes.
	MaxOrgIDLen = 64

	// MaxClockSkew is how far in the verifier's future a link timestamp may
	// be before the link is refused.
	MaxClockSkew = 5 * time.Minute

	// MaxRecoveryDelay bounds the recovery waiting period a policy may set.
	MaxRecoveryDelay = 90 * 24 * time.Hour

	// MaxWitnessPolicySize bounds the witness policy text of a managed
	// account's policy, in bytes: about 60 witnesses with Ed25519 keys, or
	// 4 with ML-DSA-44 keys (a vkey of 1.7 KiB). The body bound applies
	// to the whole genesis as well.
	MaxWitnessPolicySize = 8 << 10

	// MaxWitnessMaxAge bounds the witness maximum age a policy may set.
	MaxWitnessMaxAge = 30 * 24 * time.Hour

	// DefaultRecoveryDelay is the waiting period of DefaultPolicy.
	DefaultRecoveryDelay = 24 * time.Hour

	// MaxTimestamp bounds link timestamps (9999-12-31T23:59:59Z, in Unix
	// seconds), so that timestamp arithmetic never overflows.
	MaxTimestamp = 253402300799
)

// Fixed sizes of the encoding.
const (
	HashSize        = 32   // link hash, account id, device record hash
	DeviceIDSize    = 16   // device id
	NonceSize       = 32   // enrollment request nonce
	PairingHashSize = 32   // hash of the pairing code
	KEMKeySize      = 1216 // HPKE MLKEM768X25519 public key (1184 + 32)
	BindingKeySize  = 65   // uncompressed P-256 point
	BindingSigSize  = 64   // P-256 ECDSA r || s, low-S
)
