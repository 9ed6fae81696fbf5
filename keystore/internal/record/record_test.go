package record

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/policy"
)

func testMeta() Meta {
	return Meta{Version: 1, ID: bytes.Repeat([]byte{0x11}, 16), Class: ClassKEM, Alg: AlgXWing, State: 2,
		Policy: Policy{Unlocked: true, Associated: true}, Device: bytes.Repeat([]byte{0x22}, 16),
		Created: 1000, Changed: 2000, Cause: 3, Public: []byte{0xaa, 0xbb}}
}

// Golden bytes of a record's metadata, annotated field by field.
func TestMetaGolden(t *testing.T) {
	m := testMeta()
	b, err := EncodeMeta(&m)
	if err != nil {
		t.Fatal(err)
	}
	want := "ab" + // map(11): fields 11, 12, 14-16 are omitted when empty
		"0101" + // 1: format version 1
		"0250" + strings.Repeat("11", 16) + // 2: key id (16 bytes)
		"0302" + // 3: class 2 (kem)
		"0403" + // 4: algorithm 3 (ml-kem-768+x25519)
		"0502" + // 5: state 2 (active)
		"06a2" + "01f5" + "05f5" + // 6: policy {1: unlocked, 5: associated}
		"0750" + strings.Repeat("22", 16) + // 7: device id
		"081903e8" + // 8: created 1000 ms
		"091907d0" + // 9: changed 2000 ms
		"0a03" + // 10: cause 3 (messaging_setup)
		"0d42aabb" // 13: public key
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("meta encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestRecordGolden(t *testing.T) {
	r := Record{Meta: []byte{0xa0}, Nonce: bytes.Repeat([]byte{0x33}, 12), Sealed: bytes.Repeat([]byte{0x44}, 48)}
	b, err := Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	want := "a3" + // map(3)
		"0141a0" + // 1: meta bytes
		"024c" + strings.Repeat("33", 12) + // 2: nonce (12 bytes)
		"035830" + strings.Repeat("44", 48) // 3: sealed (48 bytes: 32-byte key + 16-byte tag)
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("record encoding changed:\n got %s\nwant %s", got, want)
	}
}

func testHeader() Header {
	return Header{Version: 1, Device: bytes.Repeat([]byte{0x55}, 16), Created: 7, Backend: "soft", State: []byte{1}, Level: "software",
		SealedKE: map[Class][]byte{ClassIdentity: {1}, ClassKEM: {2}, ClassSession: {3}, ClassBinding: {4}}}
}

func TestHeaderGolden(t *testing.T) {
	h := testHeader()
	b, err := wire.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	want := "a7" + // map(7)
		"0101" + // 1: version 1
		"0250" + strings.Repeat("55", 16) + // 2: device id
		"0307" + // 3: created 7 ms
		"0464736f6674" + // 4: backend "soft"
		"054101" + // 5: backend state
		"0668736f667477617265" + // 6: protection level "software"
		"07a4" + "014101" + "024102" + "034103" + "044104" // 7: sealed wrapping keys per class
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("header encoding changed:\n got %s\nwant %s", got, want)
	}
	if _, err := ParseHeader(b); err != nil {
		t.Fatal(err)
	}
}

func TestDeviceGolden(t *testing.T) {
	d := Device{Version: 1, Association: 3, Account: []byte("a")}
	b, err := wire.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	want := "a3" + "0101" + "0203" + "044161" // version 1, association 3 (associated), account "a"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("device encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	good := testMeta()
	cases := map[string]func(*Meta){
		"version":            func(m *Meta) { m.Version = 2 },
		"short id":           func(m *Meta) { m.ID = m.ID[:8] },
		"unknown class":      func(m *Meta) { m.Class = 9 },
		"class/alg mismatch": func(m *Meta) { m.Alg = AlgHybrid },
		"unknown state":      func(m *Meta) { m.State = 0 },
		"unknown cause":      func(m *Meta) { m.Cause = 99 },
		"time order":         func(m *Meta) { m.Changed = 1 },
		"no public":          func(m *Meta) { m.Public = nil },
		"posture":            func(m *Meta) { m.Policy.MinPosture = 7 },
		"superseded, no grace": func(m *Meta) {
			m.State = 3
		},
		"resident on software key": func(m *Meta) { m.Resident = []byte{1} },
	}
	for desc, mutate := range cases {
		t.Run(desc, func(t *testing.T) {
			m := good
			mutate(&m)
			if err := m.Validate(); err == nil {
				t.Fatal("accepted")
			}
			mb, err := wire.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := Encode(&Record{Meta: mb, Nonce: make([]byte, 12), Sealed: make([]byte, 48)})
			if _, err := Parse(rb); !errors.Is(err, ErrFormat) {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
	// Sealed-size consistency.
	mb, _ := EncodeMeta(&good)
	for _, n := range []int{0, 16, 47, 49} {
		rb, _ := Encode(&Record{Meta: mb, Nonce: make([]byte, 12), Sealed: make([]byte, n)})
		if n == 0 {
			rb, _ = Encode(&Record{Meta: mb})
		}
		if _, err := Parse(rb); !errors.Is(err, ErrFormat) {
			t.Errorf("active KEM key with %d sealed bytes: %v", n, err)
		}
	}
	rb, _ := Encode(&Record{Meta: mb, Nonce: make([]byte, 12), Sealed: make([]byte, 48)})
	if _, err := Parse(rb); err != nil {
		t.Fatalf("good record: %v", err)
	}
}

func TestPolicyRoundTrip(t *testing.T) {
	req := policy.Requirements{Unlocked: true, AuthWithin: 90 * time.Second, AuthMethods: []string{"biometric"},
		AppAuthorized: true, Associated: true, MinPosture: policy.PostureTrusted, OSTrust: true, Attestation: true,
		AttestationMaxAge: time.Hour}
	back := FromRequirements(req).Requirements()
	if back.AuthWithin != req.AuthWithin || back.MinPosture != req.MinPosture || back.AttestationMaxAge != req.AttestationMaxAge ||
		len(back.AuthMethods) != 1 || !back.OSTrust || !back.Attestation {
		t.Fatalf("round trip: %+v", back)
	}
	// Sub-second durations round up: never looser.
	if FromRequirements(policy.Requirements{AuthWithin: 1500 * time.Millisecond}).AuthWithinSec != 2 {
		t.Fatal("duration rounded down")
	}
}

func FuzzParse(f *testing.F) {
	m := testMeta()
	mb, _ := EncodeMeta(&m)
	good, _ := Encode(&Record{Meta: mb, Nonce: make([]byte, 12), Sealed: make([]byte, 48)})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		// Accepted records re-encode to the same bytes.
		again, err := Encode(&d.Raw)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatal("accepted a record that does not re-encode identically")
		}
		if err := d.Meta.Validate(); err != nil {
			t.Fatalf("accepted invalid metadata: %v", err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	h := testHeader()
	b, _ := wire.Marshal(&h)
	f.Add(b)
	testkit.FuzzCanonical(f, "header", ParseHeader)
}

func FuzzParseDevice(f *testing.F) {
	b, _ := wire.Marshal(&Device{Version: 1, Association: 3, Account: []byte("acct"), Overlay: map[Class]Policy{ClassIdentity: {Unlocked: true}}})
	f.Add(b)
	testkit.FuzzCanonical(f, "device entry", ParseDevice)
}
