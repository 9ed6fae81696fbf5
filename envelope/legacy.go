package envelope

import (
	"crypto/sha256"
	"fmt"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/wire"
)

// Versions 3 and 2 are read, never written, so that envelopes queued
// before an update open.
//
// Version 3 (one signature per message, the shared parts in every
// device's envelope, the account repeated in every entry):
//
//	Envelope  = {1: header (bstr), 2: recipient (bstr), 3: sealed key (bstr),
//	             4: body (bstr), 5: signature (bstr), 6: index (uint, omitted when 0),
//	             7: entry digests (bstr, N × 32)}
//	Header    = the version 4 header with version 3
//	Recipient = {1: account (32), 2: device (16), 3: SHA-256 of the KEM public key}
//	digest(i) = SHA-256(SHA-256(recipient i) || SHA-256(sealed key i))
//	signed    = "enigm/v1/envelope/v3" 0x00 || SHA-256(header) ||
//	            SHA-256(digest(0) || … || digest(N-1)) || SHA-256(body)
//	HPKE info = label || 0x00 || header || recipient
//
// Version 2 (one signature per device) has keys 1-5 only, a header without
// key 9, and its signature covers SHA-256(header) || SHA-256(recipient) ||
// SHA-256(sealed key) || SHA-256(body).
const (
	versionV3 = 3
	versionV2 = 2
)

// signedLabelV3 starts what a version 3 signature covers.
const signedLabelV3 = "enigm/v1/envelope/v3\x00"

// wEnvelopeV3 is one device's envelope of version 3 or 2 (fields 6 and 7
// are version 3 only).
type wEnvelopeV3 struct {
	Header    []byte `cbor:"1,keyasint"`
	Recipient []byte `cbor:"2,keyasint"`
	Sealed    []byte `cbor:"3,keyasint"`
	Body      []byte `cbor:"4,keyasint"`
	Sig       []byte `cbor:"5,keyasint"`
	Index     uint16 `cbor:"6,keyasint,omitempty"`
	Digests   []byte `cbor:"7,keyasint,omitempty"`
}

type wRecipient struct {
	Account []byte `cbor:"1,keyasint"`
	Device  []byte `cbor:"2,keyasint"`
	KEM     []byte `cbor:"3,keyasint"`
}

// parseLegacy decodes a version 3 or 2 envelope strictly.
func parseLegacy(b []byte) (*Parsed, error) {
	var w wEnvelopeV3
	if err := wire.Unmarshal(b, &w, MaxEnvelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The version is the header's.
	var v wHeader
	if err := wire.Unmarshal(w.Header, &v, maxHeader); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if v.Version == version {
		return nil, fmt.Errorf("%w: a version %d header in an envelope of the version 3 layout", ErrMalformed, v.Version)
	}
	if v.Version != versionV3 && v.Version != versionV2 {
		return nil, fmt.Errorf("%w: version %d, this build reads versions %d, %d and %d (the sender must update, or this device)",
			ErrMalformed, v.Version, versionV2, versionV3, version)
	}
	h, err := parseHeader(w.Header, v.Version)
	if err != nil {
		return nil, err
	}
	var r wRecipient
	if err := wire.Unmarshal(w.Recipient, &r, 256); err != nil {
		return nil, fmt.Errorf("%w: recipient part: %v", ErrMalformed, err)
	}
	if len(r.Account) != 32 || len(r.Device) != 16 || len(r.KEM) != 32 {
		return nil, fmt.Errorf("%w: recipient id of the wrong size", ErrMalformed)
	}
	p := &Parsed{Recipients: 1, header: w.Header, body: w.Body, sig: w.Sig, sealed: w.Sealed, w: &w,
		ToAccount: chain.AccountID(r.Account), ToDevice: chain.DeviceID(r.Device), KEMHash: [32]byte(r.KEM)}
	p.fill(h, int(v.Version))
	p.bind = append(append([]byte(nil), w.Header...), w.Recipient...)
	if v.Version == versionV2 {
		if w.Index != 0 || w.Digests != nil {
			return nil, fmt.Errorf("%w: a version 2 envelope with version 3 fields", ErrMalformed)
		}
		p.msg = digestV2(w.Header, w.Recipient, w.Sealed, w.Body)
		return p, nil
	}
	n, err := checkDigests(w.Digests, w.Index)
	if err != nil {
		return nil, err
	}
	if _, ok := p.Heads[p.ToAccount]; !ok {
		return nil, fmt.Errorf("%w: no chain head for the recipient's account %s", ErrMalformed, p.ToAccount)
	}
	p.Recipients = n
	p.entryErr = checkOwn(w.Digests, w.Index, entryDigestV3(w.Recipient, w.Sealed))
	p.msg = signedV3(w.Header, w.Digests, w.Body)
	return p, nil
}

// entryDigestV3 is digest(i) of version 3: SHA-256(SHA-256(recipient) ||
// SHA-256(sealed key)).
func entryDigestV3(recipient, sealed []byte) [32]byte {
	r, s := sha256.Sum256(recipient), sha256.Sum256(sealed)
	return sha256.Sum256(append(r[:], s[:]...))
}

// signedV3 is what a version 3 signature covers.
func signedV3(header, digests, body []byte) []byte {
	return labelled(signedLabelV3, header, digests, body)
}

// digestV2 is what a version 2 signature covers (no label).
func digestV2(common, recipient, sealed, body []byte) []byte {
	return labelled("", common, recipient, sealed, body)
}
