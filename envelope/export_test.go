package envelope

import (
	"crypto/rand"
	"crypto/sha256"

	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/keystore"
)

// Wire is an envelope's wire fields, for tests that play a relay which
// rewrites them.
type Wire = wEnvelope

// DecodeWire decodes an envelope's fields without checking them.
func DecodeWire(b []byte) (*Wire, error) {
	var w Wire
	return &w, wire.Unmarshal(b, &w, MaxEnvelope)
}

// EncodeWire encodes an envelope's fields.
func EncodeWire(w *Wire) []byte {
	b, err := wire.Marshal(w)
	if err != nil {
		panic(err)
	}
	return b
}

// SealV2 seals m the way version 2 did (one signature per device), so that
// tests can check that queued version 2 envelopes still open.
func SealV2(sk *keystore.SessionKey, from From, m Message, to []Recipient) ([]Sealed, error) {
	id := make([]byte, 16)
	rand.Read(id)
	common, err := wire.Marshal(&wHeader{Version: versionV2, Kind: uint8(m.Kind), ID: id, FromAccount: from.Account[:],
		FromDevice: from.Device[:], Conversation: m.Conversation[:], SentAt: m.SentAt.UnixMilli(), CallID: m.CallID})
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
		sealed, err := sk.SealTo(m.Kind.sealing(), r.KEM, binding(common, rb))
		if err != nil {
			return nil, err
		}
		sig, err := from.Identity.Sign(keystore.PurposeEnvelope, digestV2(common, rb, sealed, body))
		if err != nil {
			return nil, err
		}
		b, err := wire.Marshal(&wEnvelope{Header: common, Recipient: rb, Sealed: sealed, Body: body, Sig: sig})
		if err != nil {
			return nil, err
		}
		out = append(out, Sealed{To: r, Bytes: b})
	}
	return out, nil
}

// EntryDigest is digest(i) of the format.
func EntryDigest(recipient, sealed []byte) [32]byte { return entryDigest(recipient, sealed) }
