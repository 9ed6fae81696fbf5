package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// Golden bytes of the version 4 format (and, below, of version 3, still
// read), annotated (testkit.Unannotate:
// hex, "xx*N" for N copies of byte xx, "//" starts a comment). Opaque parts are
// filled with a repeated byte at their real sizes (a sealed key of 1,168
// bytes, a hybrid signature of 3,373), so the length headers are real.

const goldenHeaderV4 = `
a9                       // map(9): header
  01 04                  // 1 version: 4
  02 02                  // 2 kind: 2 call
  03 50 10*16            // 3 message id: bytes(16)
  04 58 20 a1*32         // 4 from account: bytes(32)
  05 50 d1*16            // 5 from device: bytes(16)
  06 58 20 a2*32         // 6 conversation account: bytes(32)
  07 1b 0000019b76daa800 // 7 sent at: 1767225600000 (2026-01-01T00:00:00Z), Unix ms
  08 66 63616c6c2d31     // 8 call id: text(6) "call-1" (calls only)
  09 82                  // 9 heads used: array(2), sorted by account
    a3                   // map(3): head
      01 58 20 a1*32     // 1 account
      02 04              // 2 seq: 4
      03 58 20 e1*32     // 3 link hash
    a3
      01 58 20 a2*32
      02 07              // 2 seq: 7
      03 58 20 e2*32
`

// One entry: 1,228 bytes, of which 1,172 the sealed key with its length and
// 56 the names (the account as a one-byte index into the heads, where
// version 3's recipient part repeated its 32 bytes: 89 + 2 bytes of names).
const goldenEntryV4 = `
a4                       // map(4): entry
  01 01                  // 1 account: index 1 into the header's heads (a2*32)
  02 50 d2*16            // 2 device: bytes(16)
  03 58 20 c2*32         // 3 SHA-256 of the device's KEM public key
  04 59 0490 53*1168     // 4 sealed key: bytes(1168) HPKE enc (1120) || AES-256-GCM(32-byte key) (48)
`

const goldenEnvelopeV4 = `
a7                       // map(7): one device's envelope (map(6) at index 0: key 5 omitted)
  00 04                  // 0 version: 4 (first key: what tells it from versions 3 and 2)
  01 59 012c 48*300      // 1 header: bytes (the header's encoding)
  02 58 22 42*34         // 2 body: bytes(34) nonce (12) || ciphertext || tag (16)
  03 59 0d2d 5a*3373     // 3 signature: bytes(3373) Ed25519 || ML-DSA-65, once per message
  04 59 04cc 45*1228     // 4 this device's entry: bytes(1228) (the entry's encoding)
  05 01                  // 5 index of this device's entry: 1
  06 58 60 d0*96         // 6 entry digests: bytes(96), 32 for each of 3 devices
`

const goldenMessageV4 = `
a5                       // map(5): the message form (every part once)
  00 04                  // 0 version: 4
  01 59 012c 48*300      // 1 header
  02 58 22 42*34         // 2 body
  03 59 0d2d 5a*3373     // 3 signature
  04 83                  // 4 entries: array(3), in the sender's order
    59 04cc 45*1228      //   entry 0: bytes(1228)
    59 04cc 46*1228      //   entry 1
    59 04cc 47*1228      //   entry 2
`

const goldenHeader = `
a9                       // map(9): header
  01 03                  // 1 version: 3
  02 02                  // 2 kind: 2 call
  03 50 10*16            // 3 message id: bytes(16)
  04 58 20 a1*32         // 4 from account: bytes(32)
  05 50 d1*16            // 5 from device: bytes(16)
  06 58 20 a2*32         // 6 conversation account: bytes(32)
  07 1b 0000019b76daa800 // 7 sent at: 1767225600000 (2026-01-01T00:00:00Z), Unix ms
  08 66 63616c6c2d31     // 8 call id: text(6) "call-1" (calls only)
  09 82                  // 9 heads used: array(2), sorted by account
    a3                   // map(3): head
      01 58 20 a1*32     // 1 account
      02 04              // 2 seq: 4
      03 58 20 e1*32     // 3 link hash
    a3
      01 58 20 a2*32
      02 07              // 2 seq: 7
      03 58 20 e2*32
`

const goldenRecipient = `
a3                       // map(3): recipient
  01 58 20 a2*32         // 1 account
  02 50 d2*16            // 2 device
  03 58 20 c2*32         // 3 SHA-256 of the device's KEM public key
`

const goldenEnvelope = `
a7                       // map(7): one device's envelope (map(6) at index 0: key 6 omitted)
  01 59 012c 48*300      // 1 header: bytes (the header's encoding)
  02 58 59 52*89         // 2 recipient: bytes(89) (the recipient's encoding)
  03 59 0490 53*1168     // 3 sealed key: bytes(1168) HPKE enc (1120) || AES-256-GCM(32-byte key) (48)
  04 58 22 42*34         // 4 body: bytes(34) nonce (12) || ciphertext || tag (16)
  05 59 0d2d 5a*3373     // 5 signature: bytes(3373) Ed25519 || ML-DSA-65, once per message
  06 01                  // 6 index of this device's entry: 1
  07 58 60 d0*96         // 7 entry digests: bytes(96), 32 for each of 3 devices
`

// Known answers for what is hashed and signed (computed once; a change
// here is a format change).
const (
	goldenSignedV4    = "656e69676d2f76312f656e76656c6f70652f7634002169e2fb4b4f8b4bd920b88da35935852e14e085dd6a6dba3403e7d720acf7614fc92819edad4ff101867e5c568727307fa1ffe24b1737ac7f9df16f83805c75f9fc83c44b6ae044e0b20f9903ffab5b3c70978e9b7cb89d1af0d4e37b066fa6"
	goldenEntryDigest = "72e17fb8eb4ab7fbf0252c1060466a9cb25f13b42943b9c252164b9c68bac9e9"
	goldenSigned      = "656e69676d2f76312f656e76656c6f70652f7633002169e2fb4b4f8b4bd920b88da35935852e14e085dd6a6dba3403e7d720acf7614fc92819edad4ff101867e5c568727307fa1ffe24b1737ac7f9df16f83805c75f9fc83c44b6ae044e0b20f9903ffab5b3c70978e9b7cb89d1af0d4e37b066fa6"
)

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// goldenWHeader is the header of goldenHeaderV4 (version 4) and
// goldenHeader (version 3): the two versions' headers differ only in
// their version.
func goldenWHeader(version uint8) *wHeader {
	return &wHeader{Version: version, Kind: uint8(KindCall), ID: rep(0x10, 16), FromAccount: rep(0xa1, 32), FromDevice: rep(0xd1, 16),
		Conversation: rep(0xa2, 32), SentAt: 1767225600000, CallID: "call-1",
		Heads: []wHead{{Account: rep(0xa1, 32), Seq: 4, Hash: rep(0xe1, 32)}, {Account: rep(0xa2, 32), Seq: 7, Hash: rep(0xe2, 32)}}}
}

func TestGoldenBytes(t *testing.T) {
	for _, g := range []struct {
		name      string
		value     any
		annotated string
	}{
		{"header v4", goldenWHeader(4), goldenHeaderV4},
		{"entry v4", &wEntry{Account: 1, Device: rep(0xd2, 16), KEM: rep(0xc2, 32), Sealed: rep(0x53, 1168)}, goldenEntryV4},
		{"envelope v4", &wEnvelope{Version: 4, Header: rep(0x48, 300), Body: rep(0x42, 34), Sig: rep(0x5a, 3373), Entry: rep(0x45, 1228),
			Index: 1, Digests: rep(0xd0, 96)}, goldenEnvelopeV4},
		{"message v4", &wMessage{Version: 4, Header: rep(0x48, 300), Body: rep(0x42, 34), Sig: rep(0x5a, 3373),
			Entries: [][]byte{rep(0x45, 1228), rep(0x46, 1228), rep(0x47, 1228)}}, goldenMessageV4},
		{"header v3", goldenWHeader(3), goldenHeader},
		{"recipient v3", &wRecipient{Account: rep(0xa2, 32), Device: rep(0xd2, 16), KEM: rep(0xc2, 32)}, goldenRecipient},
		{"envelope v3", &wEnvelopeV3{Header: rep(0x48, 300), Recipient: rep(0x52, 89), Sealed: rep(0x53, 1168), Body: rep(0x42, 34),
			Sig: rep(0x5a, 3373), Index: 1, Digests: rep(0xd0, 96)}, goldenEnvelope},
	} {
		t.Run(g.name, func(t *testing.T) {
			got, err := wire.Marshal(g.value)
			if err != nil {
				t.Fatal(err)
			}
			if want := testkit.Unannotate(t, g.annotated); !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("encoding differs from the annotated layout at byte %d:\n got %x\nwant %x", i, got[i:min(len(got), i+16)], want[i:min(len(want), i+16)])
			}
		})
	}
}

// TestGoldenSigned pins what is hashed and what the one signature covers.
func TestGoldenSigned(t *testing.T) {
	s4 := signed(rep(0x48, 300), rep(0xd0, 96), rep(0x42, 34))
	if got := hex.EncodeToString(s4); got != goldenSignedV4 {
		t.Errorf("version 4 signed message %s, want %s", got, goldenSignedV4)
	}
	h1, h2, h3 := sha256.Sum256(rep(0x48, 300)), sha256.Sum256(rep(0xd0, 96)), sha256.Sum256(rep(0x42, 34))
	want4 := append([]byte("enigm/v1/envelope/v4\x00"), h1[:]...)
	want4 = append(append(want4, h2[:]...), h3[:]...)
	if !bytes.Equal(s4, want4) {
		t.Errorf("version 4 signed message is not label || SHA-256(header) || SHA-256(digests) || SHA-256(body)")
	}
	// digest(i) of version 4 is SHA-256 of the entry's encoding: nothing
	// to pin beyond the entry's golden bytes.

	d := entryDigestV3(rep(0x52, 89), rep(0x53, 1168))
	if got := hex.EncodeToString(d[:]); got != goldenEntryDigest {
		t.Errorf("entry digest %s, want %s", got, goldenEntryDigest)
	}
	s := signedV3(rep(0x48, 300), rep(0xd0, 96), rep(0x42, 34))
	if got := hex.EncodeToString(s); got != goldenSigned {
		t.Errorf("signed message %s, want %s", got, goldenSigned)
	}
	// The layout, independently of the code: label, then three SHA-256.
	want := append([]byte("enigm/v1/envelope/v3\x00"), h1[:]...)
	want = append(append(want, h2[:]...), h3[:]...)
	if !bytes.Equal(s, want) {
		t.Errorf("signed message is not label || SHA-256(header) || SHA-256(digests) || SHA-256(body)")
	}
}
