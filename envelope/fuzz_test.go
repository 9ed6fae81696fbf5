package envelope

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/enigm/enigm/internal/wire"
)

// seedHeader is a small valid header of version v (heads for A and B).
func seedHeader(v uint8) []byte {
	h := &wHeader{Version: v, Kind: 1, ID: rep(1, 16), FromAccount: rep(2, 32), FromDevice: rep(3, 16), Conversation: rep(4, 32), SentAt: 1}
	if v != versionV2 {
		h.Heads = []wHead{{Account: rep(5, 32), Seq: 1, Hash: rep(6, 32)}, {Account: rep(7, 32), Seq: 2, Hash: rep(8, 32)}}
	}
	return must(wire.Marshal(h))
}

// seedMessage is a small valid version 4 message form with two entries.
func seedMessage() []byte {
	return must(wire.Marshal(&wMessage{Version: version, Header: seedHeader(version), Body: rep(10, 28), Sig: rep(11, 64), Entries: [][]byte{
		must(wire.Marshal(&wEntry{Account: 0, Device: rep(7, 16), KEM: rep(8, 32), Sealed: rep(9, 40)})),
		must(wire.Marshal(&wEntry{Account: 1, Device: rep(7, 16), KEM: rep(8, 32), Sealed: rep(9, 40)})),
	}}))
}

// FuzzParse: Parse never panics, and what it accepts is exactly the
// canonical encoding of what it decoded (no second encoding of one
// envelope), with fields of the sizes the format fixes. Seeds: versions 2,
// 3 (testdata) and 4.
func FuzzParse(f *testing.F) {
	f.Add(must(wire.Marshal(&wEnvelopeV3{Header: seedHeader(versionV3),
		Recipient: must(wire.Marshal(&wRecipient{Account: rep(5, 32), Device: rep(7, 16), KEM: rep(8, 32)})),
		Sealed:    rep(9, 40), Body: rep(10, 28), Sig: rep(11, 64), Digests: rep(12, 64)})))
	for _, d := range must(Split(seedMessage())) {
		f.Add(d.Bytes)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		again, err := wire.Marshal(p.w)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical envelope: %v", err)
		}
		switch w := p.w.(type) {
		case *wEnvelope:
			if p.Version != version || p.Recipients*32 != len(w.Digests) || int(w.Index) >= p.Recipients {
				t.Fatalf("version %d, index %d of %d digests accepted", p.Version, w.Index, len(w.Digests)/32)
			}
			if _, ok := p.Heads[p.ToAccount]; !ok {
				t.Fatal("accepted an entry whose account has no head")
			}
		case *wEnvelopeV3:
			switch p.Version {
			case versionV3:
				if p.Recipients*32 != len(w.Digests) || int(w.Index) >= p.Recipients {
					t.Fatalf("index %d of %d digests accepted", w.Index, len(w.Digests)/32)
				}
				if _, ok := p.Heads[p.ToAccount]; !ok {
					t.Fatal("accepted without a head for the recipient's account")
				}
			case versionV2:
			default:
				t.Fatalf("accepted version %d in the version 3 layout", p.Version)
			}
		default:
			t.Fatalf("decoded into %T", p.w)
		}
		// Verify and OpenKey refuse without panicking (no chain, no keys).
		if p.Verify(nil) == nil {
			t.Fatal("verified against no chain")
		}
		if _, err := p.OpenKey(nil, 0); err == nil {
			t.Fatal("opened without keys")
		}
	})
}

// FuzzSplit: Split never panics; a message form it accepts is exactly the
// canonical encoding of what it decoded (parse then marshal gives back the
// input), and every envelope it cuts parses as version 4, names the device
// of its entry, carries the message's shared parts unchanged, and lists
// the digest of every entry in order.
func FuzzSplit(f *testing.F) {
	f.Add(seedMessage())
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Split(b)
		if err != nil {
			return
		}
		var m wMessage
		if err := wire.Unmarshal(b, &m, MaxMessage); err != nil {
			t.Fatalf("Split accepted what the strict decoder refuses: %v", err)
		}
		if again := must(wire.Marshal(&m)); !bytes.Equal(again, b) {
			t.Fatal("accepted a non-canonical message form")
		}
		if len(out) != len(m.Entries) {
			t.Fatalf("%d envelopes from %d entries", len(out), len(m.Entries))
		}
		var digests []byte
		for _, e := range m.Entries {
			d := sha256.Sum256(e)
			digests = append(digests, d[:]...)
		}
		for i, d := range out {
			p, err := Parse(d.Bytes)
			if err != nil {
				t.Fatalf("envelope %d does not parse: %v", i, err)
			}
			w := p.w.(*wEnvelope)
			if p.ToAccount != d.Account || p.ToDevice != d.Device || int(w.Index) != i || !bytes.Equal(w.Entry, m.Entries[i]) ||
				!bytes.Equal(w.Header, m.Header) || !bytes.Equal(w.Body, m.Body) || !bytes.Equal(w.Sig, m.Sig) || !bytes.Equal(w.Digests, digests) {
				t.Fatalf("envelope %d does not carry the message's parts and its own entry", i)
			}
			if p.entryErr != nil {
				t.Fatalf("envelope %d: %v", i, p.entryErr)
			}
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
