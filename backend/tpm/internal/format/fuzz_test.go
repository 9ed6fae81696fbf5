package format

import (
	"bytes"
	"testing"

	"github.com/google/go-tpm/tpm2"

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
// what they accept is canonical (it re-encodes to exactly the input, within
// the size bound), and an accepted P-256 public area yields a key on the
// curve with exactly the area's coordinates. The seeds include a public
// area and a signature with one trailing byte, which go-tpm's decoder
// alone accepts.
func FuzzParseTPM(f *testing.F) {
	pub := tpm2.Marshal(tpm2.ECCSRKTemplate)
	sig := tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
		&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{1}, 32)}, SignatureS: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{2}, 32)}})})
	for _, b := range [][]byte{pub, sig} {
		f.Add(b)
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		canonical := func(what string, enc []byte, max int) {
			if !bytes.Equal(enc, in) || len(in) > max {
				t.Fatalf("accepted %s of %d bytes that re-encodes to %d other bytes (or exceeds %d)", what, len(in), len(enc), max)
			}
		}
		if p, err := ParsePublic(in); err == nil {
			canonical("public area", tpm2.Marshal(*p), MaxPublic)
			if k, err := P256Public(p); err == nil {
				pt, _ := p.Unique.ECC()
				kb, err := k.Bytes()
				if err != nil || !bytes.Equal(kb, append(append([]byte{4}, pt.X.Buffer...), pt.Y.Buffer...)) {
					t.Fatalf("P-256 key is not the area's point: %v", err)
				}
			}
		}
		if a, err := ParseAttest(in); err == nil {
			canonical("attestation", tpm2.Marshal(*a), MaxAttest)
			_, _ = a.Attested.Certify()
			_, _ = a.Attested.Quote()
		}
		if s, err := ParseSignature(in); err == nil {
			canonical("signature", tpm2.Marshal(*s), MaxSignature)
			_, _ = s.Signature.ECDSA()
		}
	})
}
