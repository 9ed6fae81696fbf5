package load

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// The message form of envelope version 4 (envelope/envelope.go), as the
// load tool writes it: what a device sends to POST /v1/messages since the
// relay takes the message form. The tool holds no keystore, so the sealed
// keys, the body and the signature are random bytes of the sizes a device
// writes (a 1,168-byte sealed key per device, a 1 KiB body, a 3,373-byte
// hybrid signature): Command checks none of them (the devices do), and it
// does everything else to this form that it does to a device's — Split,
// the sender, head and device checks, one envelope queued per device.
// TestMessageFormSplits checks the form against envelope.Split.
type (
	loadMessage struct {
		Version uint8    `cbor:"0,keyasint"`
		Header  []byte   `cbor:"1,keyasint"`
		Body    []byte   `cbor:"2,keyasint"`
		Sig     []byte   `cbor:"3,keyasint"`
		Entries [][]byte `cbor:"4,keyasint"`
	}
	loadHeader struct {
		Version      uint8      `cbor:"1,keyasint"`
		Kind         uint8      `cbor:"2,keyasint"`
		ID           []byte     `cbor:"3,keyasint"`
		FromAccount  []byte     `cbor:"4,keyasint"`
		FromDevice   []byte     `cbor:"5,keyasint"`
		Conversation []byte     `cbor:"6,keyasint"`
		SentAt       int64      `cbor:"7,keyasint"`
		Heads        []loadHead `cbor:"9,keyasint"`
	}
	loadHead struct {
		Account []byte `cbor:"1,keyasint"`
		Seq     uint64 `cbor:"2,keyasint"`
		Hash    []byte `cbor:"3,keyasint"`
	}
	loadEntry struct {
		Account uint8  `cbor:"1,keyasint"`
		Device  []byte `cbor:"2,keyasint"`
		KEM     []byte `cbor:"3,keyasint"`
		Sealed  []byte `cbor:"4,keyasint"`
	}
)

// Sizes of the random parts (MLKEM768-X25519 encapsulation 1,120 + the
// 32-byte session key wrapped with AES-256-GCM 48; nonce 12 + a 1 KiB body
// + tag 16).
const (
	loadSealed = 1168
	loadBody   = 12 + 1024 + 16
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// messageForm returns a message form from device from of account sender
// to the devices to of the account whose verified state is st, at st's
// head.
func messageForm(sender *account, from *device, st *chain.State, to []*device) ([]byte, error) {
	fromAcct, err := hex.DecodeString(sender.id)
	if err != nil {
		return nil, err
	}
	acct, head := st.Account(), st.Head()
	header, err := wire.Marshal(&loadHeader{Version: 4, Kind: 1, ID: random(16), FromAccount: fromAcct, FromDevice: from.rec.ID[:],
		Conversation: acct[:], SentAt: time.Now().UnixMilli(), Heads: []loadHead{{Account: acct[:], Seq: head.Seq, Hash: head.Hash[:]}}})
	if err != nil {
		return nil, err
	}
	m := &loadMessage{Version: 4, Header: header, Body: random(loadBody), Sig: random(hybrid.SignatureSize)}
	for _, d := range to {
		kem := sha256.Sum256(d.rec.KEM)
		e, err := wire.Marshal(&loadEntry{Device: d.rec.ID[:], KEM: kem[:], Sealed: random(loadSealed)})
		if err != nil {
			return nil, err
		}
		m.Entries = append(m.Entries, e)
	}
	return wire.Marshal(m)
}
