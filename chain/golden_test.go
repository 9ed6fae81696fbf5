package chain

import (
	"bytes"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// Golden bytes for every encoded structure, annotated. Keys and signatures
// are filled with a repeated byte but have their real sizes, so the length
// headers are the real ones. An annotation is hex (spaces ignored), "xx*N"
// for N copies of byte xx, or "quoted text" for its UTF-8 bytes; "//"
// starts a comment. docs/design/chain.md shows the same layouts.

const goldenDevice = `
a5                  // map(5): device record (software: no binding key, no evidence)
  01 50 d1*16       // 1 id: bytes(16)
  02 68 "device A"  // 2 name: text(8)
  03 59 07c0 a1*1984 // 3 identity key: bytes(1984) Ed25519 || ML-DSA-65
  04 59 04c0 a2*1216 // 4 KEM key: bytes(1216) MLKEM768X25519
  06 68 "software"  // 6 protection level: text(8)
`

const goldenHWDevice = `
a7                  // map(7): device record (hardware)
  01 50 d2*16       // 1 id: bytes(16)
  02 68 "device B"  // 2 name
  03 59 07c0 b1*1984 // 3 identity key
  04 59 04c0 b2*1216 // 4 KEM key
  05 58 41 04 b3*64 // 5 binding key: bytes(65) uncompressed P-256 point
  06 6c "hardware-tpm" // 6 protection level: text(12)
  07 a2             // 7 attestation evidence: map(2)
    01 6c "tpm2-certify" // 1 type: text(12)
    02 43 010203    // 2 data: bytes(3), opaque
`

var goldens = []struct {
	name      string
	value     any
	annotated string
}{
	{"link add_device", &wLink{
		Version: 1, Account: rep(0x11, 32), Seq: 2, Prev: rep(0x22, 32), Time: 1767225600,
		Type: uint64(TypeAddDevice), Body: []byte{0xa0},
		Sigs: []wSig{
			{Role: uint64(RoleDevice), Signer: rep(0x33, 16), Approval: &wApproval{
				Account: rep(0x11, 32), HeadSeq: 1, HeadHash: rep(0x22, 32), Nonce: rep(0x44, 32), Pairing: rep(0x55, 32), Body: rep(0x66, 32)},
				Sig: rep(0xaa, 3373)},
			{Role: uint64(RoleSubject), Sig: rep(0xbb, 3373)},
			{Role: uint64(RoleBinding), Sig: rep(0xcc, 64)},
		},
	}, `
a8                  // map(8): link
  01 01             // 1 version: 1
  02 58 20 11*32    // 2 account id: bytes(32) (absent in genesis)
  03 02             // 3 seq: 2
  04 58 20 22*32    // 4 previous link hash: bytes(32) (absent in genesis)
  05 1a 6955b900    // 5 timestamp: 1767225600 (2026-01-01T00:00:00Z), Unix seconds
  06 02             // 6 type: 2 add_device
  07 41 a0          // 7 body: bytes(1), the body's own canonical encoding (here an empty map)
  08 83             // 8 signatures: array(3); the payload is this map without key 8
    a4              // map(4): signature
      01 01         // 1 role: 1 device
      02 50 33*16   // 2 signer: device id, bytes(16) (role device only)
      03 a6         // 3 approval statement: map(6) (enrollment approvals only)
        01 58 20 11*32 // 1 account id
        02 01       // 2 head seq: 1
        03 58 20 22*32 // 3 head hash
        04 58 20 44*32 // 4 request nonce
        05 58 20 55*32 // 5 pairing code hash
        06 58 20 66*32 // 6 body hash (BodyHash of the link body)
      04 59 0d2d aa*3373 // 4 signature: bytes(3373) Ed25519 || ML-DSA-65
    a2              // map(2): signature
      01 02         // 1 role: 2 subject
      04 59 0d2d bb*3373 // 4 signature
    a2              // map(2): signature
      01 03         // 1 role: 3 binding
      04 58 40 cc*64 // 4 signature: bytes(64) P-256 r || s, low s
`},
	{"body genesis", &wGenesis{Suite: 1, Device: goldenDeviceWire(), Recovery: rep(0xe1, 1984),
		Policy: wPolicy{AdminApproval: true, RecoveryDelay: 86400, AdminReview: true},
		Org:    &wOrg{ID: "example.org", AdminKey: rep(0xe2, 1984)}}, `
a5                  // map(5): genesis body
  01 01             // 1 suite: 1 (hybrid Ed25519+ML-DSA-65, MLKEM768X25519, SHA-256, P-256)
  02` + goldenDevice + `
  03 59 07c0 e1*1984 // 3 recovery public key
  04 a3             // 4 policy: map(3)
    01 f5           // 1 require admin approval: true
    02 1a 00015180  // 2 recovery delay: 86400 s
    03 f5           // 3 require admin review: true
  05 a2             // 5 organisation (managed accounts only): map(2)
    01 6b "example.org" // 1 organisation id: text(11)
    02 59 07c0 e2*1984 // 2 admin public key
`},
	{"body add_device", &wAddDevice{Device: goldenHWDeviceWire(), Nonce: rep(0x44, 32), Pairing: rep(0x55, 32)}, `
a3                  // map(3): add_device body
  01` + goldenHWDevice + `
  02 58 20 44*32    // 2 request nonce
  03 58 20 55*32    // 3 pairing code hash
`},
	{"body revoke_device", &wRevokeDevice{ID: rep(0xd2, 16), Reason: uint64(ReasonCompromised)}, `
a2                  // map(2): revoke_device body
  01 50 d2*16       // 1 device id
  02 02             // 2 reason: 2 compromised (absent when unspecified)
`},
	{"body rotate_keys", &wRotateKeys{ID: rep(0xd1, 16), Identity: rep(0xf1, 1984), KEM: rep(0xf2, 1216)}, `
a3                  // map(3): rotate_keys body
  01 50 d1*16       // 1 device id
  02 59 07c0 f1*1984 // 2 new identity key (absent: unchanged)
  03 59 04c0 f2*1216 // 3 new KEM key (absent: unchanged)
`},
	{"body replace_device", &wReplaceDevice{Old: rep(0xd1, 16), Device: goldenHWDeviceWire(), Nonce: rep(0x44, 32), Pairing: rep(0x55, 32)}, `
a4                  // map(4): replace_device body
  01 50 d1*16       // 1 old device id
  02` + goldenHWDevice + `
  03 58 20 44*32    // 3 request nonce
  04 58 20 55*32    // 4 pairing code hash
`},
	{"body recovery_request", &wRecoveryRequest{Device: goldenDeviceWire()}, `
a1                  // map(1): recovery_request body: the new device, public keys only
  01` + goldenDevice},
	{"body recovery_veto and recover", &wRequestRef{Request: rep(0x77, 32)}, `
a1                  // map(1): recovery_veto and recover body
  01 58 20 77*32    // 1 hash of the recovery_request link
`},
	{"body rotate_recovery", &wRotateRecovery{Recovery: rep(0xe3, 1984)}, `
a1                  // map(1): rotate_recovery body
  01 59 07c0 e3*1984 // 1 new recovery public key
`},
	{"body set_policy", &wSetPolicy{Policy: wPolicy{RecoveryDelay: 3600, MinLevel: "hardware-tpm", Attestation: true}}, `
a1                  // map(1): set_policy body
  01 a3             // 1 policy: map(3); false flags and zero values are absent
    02 19 0e10      // 2 recovery delay: 3600 s
    04 6c "hardware-tpm" // 4 minimum protection level
    05 f5           // 5 require verified attestation: true
`},
	{"body set_policy with a witness policy", &wSetPolicy{Policy: wPolicy{AdminApproval: true, RecoveryDelay: 86400,
		WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: 1800}}, `
a1                  // map(1): set_policy body
  01 a4             // 1 policy: map(4)
    01 f5           // 1 require admin approval: true
    02 1a 00015180  // 2 recovery delay: 86400 s
    06 78 5c        // 6 witness policy: text(92), c2sp.org/tlog-policy lines
      "witness w1 witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o" 0a
      "quorum w1" 0a
    07 19 0708      // 7 witness maximum age: 1800 s (absent: the device's own bound)
`},
}

// goldenWitnessPolicy is a tlog-policy of one Ed25519 witness (key type
// 0x04, cosignature/v1) and the quorum of it.
const goldenWitnessPolicy = "witness w1 witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o\nquorum w1\n"

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func goldenDeviceWire() wDevice {
	return wDevice{ID: rep(0xd1, 16), Name: "device A", Identity: rep(0xa1, 1984), KEM: rep(0xa2, 1216), Level: "software"}
}

func goldenHWDeviceWire() wDevice {
	return wDevice{ID: rep(0xd2, 16), Name: "device B", Identity: rep(0xb1, 1984), KEM: rep(0xb2, 1216),
		Binding: append([]byte{4}, rep(0xb3, 64)...), Level: "hardware-tpm",
		Evidence: &wEvidence{Type: "tpm2-certify", Data: []byte{1, 2, 3}}}
}

func TestGoldenBytes(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := wire.Marshal(g.value)
			if err != nil {
				t.Fatal(err)
			}
			want := testkit.Unannotate(t, g.annotated)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("encoding differs from the annotated layout at byte %d:\n got %x\nwant %x", i, got[i:min(len(got), i+16)], want[i:min(len(want), i+16)])
			}
		})
	}
}

// TestGoldenRealLink checks that links built by Draft have the annotated
// layout: the header bytes of a real add_device link, and its payload is
// the link without key 8.
func TestGoldenRealLink(t *testing.T) {
	w := newWorld("golden").script("genesis A")
	l := w.addLink(w.hw("B"), w.actor("A"), false)
	acct, prev := l.Account(), l.Prev()
	head := []byte{0xa8, 0x01, 0x01, 0x02, 0x58, 0x20}
	head = append(head, acct[:]...)
	head = append(head, 0x03, 0x01, 0x04, 0x58, 0x20)
	head = append(head, prev[:]...)
	head = append(head, 0x05, 0x1a, 0x69, 0x55, 0xb9, 0x00, 0x06, 0x02, 0x07, 0x59)
	if !bytes.HasPrefix(l.Bytes(), head) {
		t.Fatalf("link header differs:\n got %x\nwant %x", l.Bytes()[:len(head)], head)
	}
	p := l.Payload()
	if p[0] != 0xa7 || !bytes.Equal(p[1:], l.Bytes()[1:len(p)]) || l.Bytes()[len(p)] != 0x08 {
		t.Fatal("payload is not the link without its signatures (key 8)")
	}
	// Three signatures: device approval, subject, binding.
	if l.Bytes()[len(p)+1] != 0x83 {
		t.Fatalf("signature array header %x", l.Bytes()[len(p)+1])
	}
}
