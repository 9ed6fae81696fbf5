package envelope

import (
	"bytes"
	"testing"

	"github.com/enigm/enigm/internal/wire"
)

// FuzzParse: Parse never panics, and what it accepts is exactly the
// canonical encoding of what it decoded (no second encoding of one
// envelope), with fields of the sizes the format fixes.
func FuzzParse(f *testing.F) {
	f.Add(must(wire.Marshal(&wEnvelope{Header: must(wire.Marshal(&wHeader{Version: 3, Kind: 1, ID: rep(1, 16), FromAccount: rep(2, 32),
		FromDevice: rep(3, 16), Conversation: rep(4, 32), SentAt: 1, Heads: []wHead{{Account: rep(5, 32), Seq: 1, Hash: rep(6, 32)}}})),
		Recipient: must(wire.Marshal(&wRecipient{Account: rep(5, 32), Device: rep(7, 16), KEM: rep(8, 32)})),
		Sealed:    rep(9, 40), Body: rep(10, 28), Sig: rep(11, 64), Digests: rep(12, 64)})))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		again, err := wire.Marshal(&p.w)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical envelope: %v", err)
		}
		if p.Version != version && p.Version != versionV2 {
			t.Fatalf("accepted version %d", p.Version)
		}
		if p.Version == version {
			if p.Recipients*32 != len(p.w.Digests) || int(p.w.Index) >= p.Recipients {
				t.Fatalf("index %d of %d digests accepted", p.w.Index, len(p.w.Digests)/32)
			}
			if _, ok := p.Heads[p.ToAccount]; !ok {
				t.Fatal("accepted without a head for the recipient's account")
			}
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

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
