// Package keymint is the ASN.1 schema of Android's key attestation
// extension, KeyDescription (Android's "Key and ID attestation" schema,
// KeyMint version 300), shared by the code that reads it (the platform
// backend's verifier) and the code that writes it (the simulated device).
// The authorization tags and values each side uses stay with that side:
// the simulator spells them out on its own, so that it remains a check on
// the verifier's numbers rather than a copy of them.
package keymint

import "encoding/asn1"

// OID is the OID of the key attestation certificate extension.
var OID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}

// KeyDescription is the extension's value. The field order is the
// schema's: never reorder.
type KeyDescription struct {
	AttestationVersion       int
	AttestationSecurityLevel asn1.Enumerated
	KeyMintVersion           int
	KeyMintSecurityLevel     asn1.Enumerated
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         asn1.RawValue
	HardwareEnforced         asn1.RawValue
}
