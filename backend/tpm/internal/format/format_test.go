package format

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/internal/wire"
)

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func goodState() *State {
	return &State{
		Version:      1,
		Handle:       0x81454E00,
		StoreName:    append([]byte{0x00, 0x0b}, rep(0x11, 32)...),
		Salt:         rep(0x22, 32),
		PCRMask:      1<<16 | 1<<23,
		PCRDigest:    rep(0x33, 32),
		CheckPublic:  []byte{0xaa, 0xbb, 0xcc},
		CheckPrivate: []byte{0xdd, 0xdd},
	}
}

// Golden bytes of the state encoding, annotated.
func TestStateGolden(t *testing.T) {
	enc, err := MarshalState(goodState())
	if err != nil {
		t.Fatal(err)
	}
	want := "a8" + // map(8)
		"0101" + // 1: version 1
		"021a81454e00" + // 2: persistent handle 0x81454E00
		"035822" + "000b" + strings.Repeat("11", 32) + // 3: store key Name, 34 bytes (SHA-256 alg id + digest)
		"045820" + strings.Repeat("22", 32) + // 4: salt, 32 bytes
		"051a00810000" + // 5: PCR mask: PCRs 16 and 23
		"065820" + strings.Repeat("33", 32) + // 6: PCR digest, 32 bytes
		"0743aabbcc" + // 7: check object TPMT_PUBLIC
		"0842dddd" // 8: check object TPM2B_PRIVATE contents
	if got := hex.EncodeToString(enc); got != want {
		t.Fatalf("state encoding changed:\n got %s\nwant %s", got, want)
	}
	back, err := ParseState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if back.Handle != 0x81454E00 || back.PCRMask != goodState().PCRMask || !bytes.Equal(back.CheckPrivate, []byte{0xdd, 0xdd}) {
		t.Fatalf("round trip: %+v", back)
	}
}

// Without PCRs, fields 5 and 6 are absent.
func TestStateGoldenNoPCR(t *testing.T) {
	s := goodState()
	s.PCRMask, s.PCRDigest = 0, nil
	enc, err := MarshalState(s)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != 0xa6 || bytes.Contains(enc, []byte{0x05, 0x1a}) {
		t.Fatalf("encoding %x", enc)
	}
}

func TestObjectGolden(t *testing.T) {
	enc, err := MarshalObject(&Object{Kind: KindBinding, Public: []byte{1, 2}, Private: []byte{3}})
	if err != nil {
		t.Fatal(err)
	}
	want := "a3" + // map(3)
		"0102" + // 1: kind 2 (binding key)
		"02420102" + // 2: TPMT_PUBLIC
		"034103" // 3: TPM2B_PRIVATE contents
	if got := hex.EncodeToString(enc); got != want {
		t.Fatalf("object encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestEvidenceGolden(t *testing.T) {
	enc, err := MarshalEvidence(&Evidence{Version: 1, AKPublic: []byte{1}, KeyPublic: []byte{2}, CertifyInfo: []byte{3}, CertifySig: []byte{4}, Quote: []byte{5}, QuoteSig: []byte{6}})
	if err != nil {
		t.Fatal(err)
	}
	want := "a7" + // map(7)
		"0101" + // 1: version 1
		"024101" + // 2: AK TPMT_PUBLIC
		"034102" + // 3: certified key TPMT_PUBLIC
		"044103" + // 4: TPMS_ATTEST (certify)
		"054104" + // 5: TPMT_SIGNATURE over 4
		"064105" + // 6: TPMS_ATTEST (quote)
		"074106" // 7: TPMT_SIGNATURE over 6
	if got := hex.EncodeToString(enc); got != want {
		t.Fatalf("evidence encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestStateValidate(t *testing.T) {
	cases := []struct {
		desc   string
		mutate func(*State)
	}{
		{"version 0", func(s *State) { s.Version = 0 }},
		{"version 2", func(s *State) { s.Version = 2 }},
		{"transient handle", func(s *State) { s.Handle = 0x80000001 }},
		{"platform persistent handle", func(s *State) { s.Handle = 0x81800000 }},
		{"short name", func(s *State) { s.StoreName = s.StoreName[:33] }},
		{"SHA-1 name", func(s *State) { s.StoreName[1] = 0x04 }},
		{"short salt", func(s *State) { s.Salt = s.Salt[:16] }},
		{"PCR 24", func(s *State) { s.PCRMask |= 1 << 24 }},
		{"PCRs without digest", func(s *State) { s.PCRDigest = nil }},
		{"digest without PCRs", func(s *State) { s.PCRMask = 0 }},
		{"short PCR digest", func(s *State) { s.PCRDigest = s.PCRDigest[:31] }},
		{"no check public", func(s *State) { s.CheckPublic = nil }},
		{"no check private", func(s *State) { s.CheckPrivate = nil }},
		{"huge check public", func(s *State) { s.CheckPublic = make([]byte, MaxPublic+1) }},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			s := goodState()
			c.mutate(s)
			if _, err := MarshalState(s); !errors.Is(err, ErrFormat) {
				t.Fatalf("MarshalState: err = %v", err)
			}
			enc, err := wire.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseState(enc); !errors.Is(err, ErrFormat) {
				t.Fatalf("ParseState: err = %v", err)
			}
		})
	}
}

func TestParseObjectRejects(t *testing.T) {
	good, _ := MarshalObject(&Object{Kind: KindSealed, Public: []byte{1}, Private: []byte{2}})
	if _, err := ParseObject(good, KindBinding); !errors.Is(err, ErrFormat) {
		t.Fatalf("wrong kind accepted: %v", err)
	}
	for _, o := range []Object{
		{Kind: 0, Public: []byte{1}, Private: []byte{2}},
		{Kind: 3, Public: []byte{1}, Private: []byte{2}},
		{Kind: 1, Private: []byte{2}},
		{Kind: 1, Public: []byte{1}},
		{Kind: 1, Public: make([]byte, MaxPublic+1), Private: []byte{2}},
	} {
		enc, _ := wire.Marshal(o)
		if _, err := ParseObject(enc, o.Kind); !errors.Is(err, ErrFormat) {
			t.Fatalf("%+v accepted: %v", o, err)
		}
	}
}

func TestParsePublicStrict(t *testing.T) {
	good := tpm2.Marshal(tpm2.ECCSRKTemplate)
	if _, err := ParsePublic(good); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"trailing byte": append(bytes.Clone(good), 0),
		"truncated":     good[:len(good)-1],
		"empty":         nil,
		"too large":     make([]byte, MaxPublic+1),
		"ALG_ERROR scheme": func() []byte {
			// The scheme selector written as 0x0000 instead of TPM_ALG_NULL
			// decodes, but is not the canonical encoding.
			b := bytes.Clone(good)
			i := bytes.Index(b, []byte{0x00, 0x10, 0x00, 0x03}) // scheme NULL, curve P-256
			if i < 0 {
				t.Fatal("no scheme in template")
			}
			b[i+1] = 0
			return b
		}(),
	}
	for desc, b := range cases {
		if _, err := ParsePublic(b); !errors.Is(err, ErrFormat) {
			t.Fatalf("%s: err = %v", desc, err)
		}
	}
}

func TestName(t *testing.T) {
	pub := tpm2.ECCSRKTemplate
	want, err := tpm2.ObjectName(&pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := Name(tpm2.Marshal(pub)); !bytes.Equal(got, want.Buffer) {
		t.Fatalf("Name %x, go-tpm %x", got, want.Buffer)
	}
}
