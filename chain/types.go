package chain

import (
	"encoding/hex"
	"time"
	"unicode/utf8"
)

// Hash is a SHA-256 link hash (see Link.Hash).
type Hash [HashSize]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// AccountID identifies an account: the hash of its genesis link, so an
// account id commits to the account's first device, recovery key,
// organisation and policy.
type AccountID Hash

// String returns the account id in hex.
func (a AccountID) String() string { return hex.EncodeToString(a[:]) }

// DeviceID identifies a device within an account. The device picks it at
// random when it generates its keys; the chain refuses an id it has seen
// before, so ids are never reused.
type DeviceID [DeviceIDSize]byte

// String returns the id in hex.
func (d DeviceID) String() string { return hex.EncodeToString(d[:]) }

// Head names a verified point of a chain: the sequence number and hash of
// its last link. Clients keep the newest Head they verified for every
// account and give it to CheckView to refuse rollbacks and forks.
type Head struct {
	Seq  uint64
	Hash Hash
}

// LinkType is the type of a link. Values are part of the wire format:
// never reorder or reuse them.
type LinkType uint8

// Link types.
const (
	TypeGenesis         LinkType = 1
	TypeAddDevice       LinkType = 2
	TypeRevokeDevice    LinkType = 3
	TypeRotateKeys      LinkType = 4
	TypeReplaceDevice   LinkType = 5
	TypeRecoveryRequest LinkType = 6
	TypeRecoveryVeto    LinkType = 7
	TypeRecover         LinkType = 8
	TypeRotateRecovery  LinkType = 9
	TypeSetPolicy       LinkType = 10

	typeEnd LinkType = 11
)

var typeNames = [typeEnd]string{
	"", "genesis", "add_device", "revoke_device", "rotate_keys", "replace_device",
	"recovery_request", "recovery_veto", "recover", "rotate_recovery", "set_policy",
}

// String returns the type's name as used in signing contexts, e.g.
// "add_device".
func (t LinkType) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return "unknown"
}

func (t LinkType) known() bool { return t > 0 && t < typeEnd }

// Role says in which capacity a signature was made, and so which key
// verifies it and under which signing context. Values are part of the wire
// format.
type Role uint8

// Signature roles.
const (
	// RoleDevice: an active device of the account, named by the
	// signature's Signer field (approver, revoker, vetoer, the device that
	// rotates its keys or is replaced).
	RoleDevice Role = 1
	// RoleSubject: the identity key the link introduces (the new device,
	// or a device's new identity key in rotate_keys): proof of possession.
	RoleSubject Role = 2
	// RoleBinding: the P-256 hardware binding key of the device the link
	// introduces or rotates (ECDSA): proof of possession and binding of
	// the other keys to the hardware.
	RoleBinding Role = 3
	// RoleOrg: the organisation admin key of a managed account.
	RoleOrg Role = 4
	// RoleRecovery: the account's current recovery key. It signs
	// recovery_request and nothing else: it never revokes, vetoes or
	// recovers, so everything it starts waits out the visible, vetoable
	// waiting period.
	RoleRecovery Role = 5
	// RoleNewRecovery: the recovery key the link introduces: proof of
	// possession.
	RoleNewRecovery Role = 6

	roleEnd Role = 7
)

var roleNames = [roleEnd]string{"", "device", "subject", "binding", "org", "recovery", "new_recovery"}

// String returns the role's name as used in signing contexts.
func (r Role) String() string {
	if r > 0 && r < roleEnd {
		return roleNames[r]
	}
	return "unknown"
}

// Level is the protection level a device reports for its private keys. The
// values match backend.Level; chain does not import backend.
type Level string

// Protection levels.
const (
	LevelSoftware         Level = "software"
	LevelHardwareTPM      Level = "hardware-tpm"
	LevelHardwarePKCS11   Level = "hardware-pkcs11"
	LevelHardwarePlatform Level = "hardware-platform"
)

// Rank orders levels: 0 for an unknown level, 1 for software, 2 for every
// hardware level. A policy minimum is met by any level of at least its rank.
func (l Level) Rank() int {
	switch l {
	case LevelSoftware:
		return 1
	case LevelHardwareTPM, LevelHardwarePKCS11, LevelHardwarePlatform:
		return 2
	}
	return 0
}

// Valid reports whether l is one of the known levels.
func (l Level) Valid() bool { return l.Rank() > 0 }

// Policy is the account policy recorded in the chain. Unmanaged accounts
// fix it at genesis; managed accounts change it with set_policy, signed by
// the organisation key.
type Policy struct {
	// RequireAdminApproval: add_device and replace_device need the
	// organisation's counter-signature. Managed accounts only.
	RequireAdminApproval bool
	// RecoveryDelay is the waiting period between recovery_request and
	// recover, measured on link timestamps, in whole seconds. Zero is
	// allowed (development servers); at most MaxRecoveryDelay.
	RecoveryDelay time.Duration
	// RequireAdminReview: recover needs the organisation's
	// counter-signature. Managed accounts only.
	RequireAdminReview bool
	// MinLevel is the lowest protection level a joining device may report;
	// empty for no minimum.
	MinLevel Level
	// RequireVerifiedAttestation: a joining device must carry attestation
	// evidence that the configured AttestationVerifier accepts. Reserved
	// for deployments with attestation; without a verifier, every join
	// fails closed with ErrAttestationRequired.
	RequireVerifiedAttestation bool
	// WitnessPolicy is the organisation's c2sp.org/tlog-policy text: the
	// witnesses, and the quorum of them, whose cosignatures every
	// transparency-log checkpoint under which the account's own devices
	// accept its links must carry, in addition to each device's own
	// policy. Empty for none. Managed accounts only. The chain checks its
	// form only (CheckWitnessPolicyText); devices and the admin tools
	// parse it with translog.ParsePolicy, and a device refuses to sync
	// under one that does not parse.
	WitnessPolicy string
	// WitnessMaxAge bounds, for those devices, the age of the quorum's
	// cosignatures by their timestamps; the smaller of it and a device's
	// own bound applies. Zero leaves the device's bound (by default one
	// hour); whole seconds, at most MaxWitnessMaxAge, and only with a
	// WitnessPolicy.
	WitnessMaxAge time.Duration
}

// DefaultPolicy is the policy of a new unmanaged account: a 24-hour
// recovery waiting period and nothing else.
func DefaultPolicy() Policy { return Policy{RecoveryDelay: DefaultRecoveryDelay} }

func (p Policy) validate(managed bool) error {
	if p.RecoveryDelay < 0 || p.RecoveryDelay > MaxRecoveryDelay || p.RecoveryDelay%time.Second != 0 {
		return errorf(ErrPolicy, "recovery delay %v is not whole seconds in [0, %v]", p.RecoveryDelay, MaxRecoveryDelay)
	}
	if p.MinLevel != "" && !p.MinLevel.Valid() {
		return errorf(ErrPolicy, "unknown minimum protection level %q", p.MinLevel)
	}
	if !managed && (p.RequireAdminApproval || p.RequireAdminReview) {
		return errorf(ErrPolicy, "admin approval or review needs an organisation, and the account has none")
	}
	if p.WitnessPolicy != "" {
		if !managed {
			return errorf(ErrPolicy, "a witness policy in the chain needs an organisation, and the account has none (a device sets its own with its log configuration)")
		}
		if err := CheckWitnessPolicyText(p.WitnessPolicy); err != nil {
			return err
		}
	}
	if p.WitnessMaxAge < 0 || p.WitnessMaxAge > MaxWitnessMaxAge || p.WitnessMaxAge%time.Second != 0 {
		return errorf(ErrPolicy, "witness maximum age %v is not whole seconds in [0, %v]", p.WitnessMaxAge, MaxWitnessMaxAge)
	}
	if p.WitnessMaxAge != 0 && p.WitnessPolicy == "" {
		return errorf(ErrPolicy, "a witness maximum age needs a witness policy")
	}
	return nil
}

// CheckWitnessPolicyText checks the form of a witness policy as the chain
// carries it: 1 to MaxWitnessPolicySize bytes of UTF-8 lines, each ended
// by a newline, holding no control character other than tab (no carriage
// return). It does not parse the policy (translog.ParsePolicy does, with
// every rule of c2sp.org/tlog-policy); it bounds what a link can make
// every device read.
func CheckWitnessPolicyText(text string) error {
	switch {
	case text == "":
		return errorf(ErrPolicy, "the witness policy is empty")
	case len(text) > MaxWitnessPolicySize:
		return errorf(ErrPolicy, "the witness policy is %d bytes, at most %d", len(text), MaxWitnessPolicySize)
	case !utf8.ValidString(text):
		return errorf(ErrPolicy, "the witness policy is not UTF-8")
	case text[len(text)-1] != '\n':
		return errorf(ErrPolicy, "the witness policy's last line does not end with a newline")
	}
	line := 1
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\n':
			line++
		case c != '\t' && (c < 0x20 || c == 0x7f):
			return errorf(ErrPolicy, "the witness policy has control character 0x%02x on line %d (only tab and newline are allowed)", c, line)
		}
	}
	return nil
}

// Evidence is attestation evidence about a device's keys: an opaque,
// typed statement by its hardware. The chain carries it; an
// AttestationVerifier judges it.
type Evidence struct {
	Type string // e.g. "tpm2-certify"; at most MaxAttestationTypeLen bytes
	Data []byte // at most MaxAttestationSize bytes
}
