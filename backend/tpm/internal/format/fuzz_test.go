package format

import (
	"bytes"
	"testing"

	"github.com/enigm/enigm/internal/wire"
)

// Round-trip fuzz targets: whatever a decoder accepts re-encodes to the
// same bytes and validates. Seeds from the simulator are committed under
// testdata/fuzz.

func FuzzParseState(f *testing.F) {
	enc, _ := MarshalState(goodState())
	f.Add(enc)
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseState(in)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatal("accepted an invalid state")
		}
		again, err := MarshalState(s)
		if err != nil || !bytes.Equal(again, in) {
			t.Fatalf("round trip differs: %v", err)
		}
	})
}

func FuzzParseObject(f *testing.F) {
	enc, _ := MarshalObject(&Object{Kind: KindSealed, Public: []byte{1}, Private: []byte{2}})
	f.Add(enc)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, kind := range []uint8{KindSealed, KindBinding} {
			o, err := ParseObject(in, kind)
			if err != nil {
				continue
			}
			again, err := wire.Marshal(o)
			if err != nil || !bytes.Equal(again, in) || o.Kind != kind {
				t.Fatalf("round trip differs: %v", err)
			}
			if _, err := ParsePublic(o.Public); err == nil {
				_ = Name(o.Public)
			}
		}
	})
}

func FuzzParseEvidence(f *testing.F) {
	enc, _ := MarshalEvidence(&Evidence{Version: 1, AKPublic: []byte{1}, KeyPublic: []byte{2}, CertifyInfo: []byte{3}, CertifySig: []byte{4}})
	f.Add(enc)
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseEvidence(in)
		if err != nil {
			return
		}
		again, err := MarshalEvidence(e)
		if err != nil || !bytes.Equal(again, in) {
			t.Fatalf("round trip differs: %v", err)
		}
		// The TPM structures inside must not crash their parsers.
		for _, p := range [][]byte{e.AKPublic, e.KeyPublic} {
			if pub, err := ParsePublic(p); err == nil {
				_, _ = P256Public(pub)
			}
		}
		_, _ = ParseAttest(e.CertifyInfo)
		_, _ = ParseSignature(e.CertifySig)
	})
}

// FuzzParseTPM feeds raw TPM structures to the strict parsers: no panic,
// and what they accept is canonical.
func FuzzParseTPM(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		if p, err := ParsePublic(in); err == nil {
			_, _ = P256Public(p)
		}
		if a, err := ParseAttest(in); err == nil {
			_, _ = a.Attested.Certify()
			_, _ = a.Attested.Quote()
		}
		if s, err := ParseSignature(in); err == nil {
			_, _ = s.Signature.ECDSA()
		}
	})
}
