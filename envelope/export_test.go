package envelope

import (
	"crypto/sha256"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/keystore"
)

// Wire is a version 4 envelope's wire fields, WireV3 a version 3 (or 2)
// envelope's, Entry a version 4 entry's and MessageWire a message form's, for tests that play a relay
// which rewrites them.
type (
	Wire        = wEnvelope
	WireV3      = wEnvelopeV3
	Entry       = wEntry
	MessageWire = wMessage
)

func decode[T any](b []byte, max int) (*T, error) {
	var w T
	return &w, wire.Unmarshal(b, &w, max)
}

func encode(v any) []byte {
	b, err := wire.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// DecodeWire decodes a version 4 envelope's fields without checking them.
func DecodeWire(b []byte) (*Wire, error) { return decode[Wire](b, MaxEnvelope) }

// DecodeWireV3 decodes a version 3 or 2 envelope's fields.
func DecodeWireV3(b []byte) (*WireV3, error) { return decode[WireV3](b, MaxEnvelope) }

// DecodeEntry decodes a version 4 entry.
func DecodeEntry(b []byte) (*Entry, error) { return decode[Entry](b, maxEntry) }

// DecodeMessage decodes a message form's fields.
func DecodeMessage(b []byte) (*MessageWire, error) { return decode[MessageWire](b, MaxMessage) }

// EncodeWire encodes any of the wire structs.
func EncodeWire(w any) []byte { return encode(w) }

// Binding is the HPKE binding of a version 4 entry.
func Binding(header []byte, a chain.AccountID, d chain.DeviceID, kem [32]byte) []byte {
	return binding(header, a, d, kem)
}

// SealV2 seals m the way version 2 did (one signature per device), so that
// tests can check that queued version 2 envelopes still open.
func SealV2(sk *keystore.SessionKey, from From, m Message, to []Recipient) ([]Sealed, error) {
	common, err := newHeader(versionV2, from, m, nil)
	if err != nil {
		return nil, err
	}
	body, err := sk.Seal(m.Body, common)
	if err != nil {
		return nil, err
	}
	var out []Sealed
	for _, r := range to {
		kh := sha256.Sum256(r.KEM)
		rb, err := wire.Marshal(&wRecipient{Account: r.Account[:], Device: r.Device[:], KEM: kh[:]})
		if err != nil {
			return nil, err
		}
		sealed, err := sk.SealTo(m.Kind.sealing(), r.KEM, append(append([]byte(nil), common...), rb...))
		if err != nil {
			return nil, err
		}
		sig, err := from.Identity.Sign(keystore.PurposeEnvelope, digestV2(common, rb, sealed, body))
		if err != nil {
			return nil, err
		}
		b, err := wire.Marshal(&wEnvelopeV3{Header: common, Recipient: rb, Sealed: sealed, Body: body, Sig: sig})
		if err != nil {
			return nil, err
		}
		out = append(out, Sealed{To: r, Bytes: b})
	}
	return out, nil
}

// SealV3 seals m the way version 3 did (one signature per message, the
// shared parts in every device's envelope), so that tests can check that
// queued version 3 envelopes still open.
func SealV3(sk *keystore.SessionKey, from From, m Message, to []Recipient) ([]Sealed, error) {
	if err := checkSeal(m, to); err != nil {
		return nil, err
	}
	hs, err := heads(to)
	if err != nil {
		return nil, err
	}
	header, err := newHeader(versionV3, from, m, hs)
	if err != nil {
		return nil, err
	}
	body, err := sk.Seal(m.Body, header)
	if err != nil {
		return nil, err
	}
	rbs := make([][]byte, len(to))
	sealed := make([][]byte, len(to))
	var digests []byte
	for i, r := range to {
		kh := sha256.Sum256(r.KEM)
		if rbs[i], err = wire.Marshal(&wRecipient{Account: r.Account[:], Device: r.Device[:], KEM: kh[:]}); err != nil {
			return nil, err
		}
		if sealed[i], err = sk.SealTo(m.Kind.sealing(), r.KEM, append(append([]byte(nil), header...), rbs[i]...)); err != nil {
			return nil, err
		}
		d := entryDigestV3(rbs[i], sealed[i])
		digests = append(digests, d[:]...)
	}
	sig, err := from.Identity.Sign(keystore.PurposeEnvelope, signedV3(header, digests, body))
	if err != nil {
		return nil, err
	}
	out := make([]Sealed, len(to))
	for i, r := range to {
		b, err := wire.Marshal(&wEnvelopeV3{Header: header, Recipient: rbs[i], Sealed: sealed[i], Body: body, Sig: sig,
			Index: uint16(i), Digests: digests})
		if err != nil {
			return nil, err
		}
		out[i] = Sealed{To: r, Bytes: b}
	}
	return out, nil
}
