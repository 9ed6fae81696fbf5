package format

import (
	"bytes"
	"crypto/elliptic"
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

// FuzzParseTPM feeds raw TPM structures to the strict parsers. Whatever a
// parser accepts is canonical: its TPM encoding is exactly the input, so
// one structure has one accepted encoding (a signed certifyInfo or quote
// cannot be replayed in another form). Accepted P-256 public areas give a
// point on the curve equal to the area's coordinates, and the union
// accessors agree with the tag that selects them. The committed seeds are
// simulator outputs and, for each, the same bytes with a trailing byte:
// those must be refused.
func FuzzParseTPM(f *testing.F) {
	pub := tpm2.Marshal(tpm2.ECCSRKTemplate)
	sig := tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
		&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{1}, 32)}, SignatureS: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{2}, 32)}})})
	for _, b := range [][]byte{pub, sig} {
		f.Add(b)
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if p, err := ParsePublic(in); err == nil {
			if !bytes.Equal(tpm2.Marshal(*p), in) {
				t.Fatal("ParsePublic accepted a non-canonical encoding")
			}
			if n := Name(in); len(n) != NameSize || n[0] != 0x00 || n[1] != 0x0b {
				t.Fatalf("Name = %x", n)
			}
			if k, err := P256Public(p); err == nil {
				pt, _ := p.Unique.ECC()
				if p.Type != tpm2.TPMAlgECC || k.Curve != elliptic.P256() {
					t.Fatal("P256Public accepted a key that is not ECC P-256")
				}
				if _, err := k.ECDH(); err != nil {
					t.Fatalf("P256Public returned a point off the curve: %v", err)
				}
				raw, err := k.Bytes()
				if err != nil || !bytes.Equal(raw[1:33], pt.X.Buffer) || !bytes.Equal(raw[33:], pt.Y.Buffer) {
					t.Fatal("P256Public returned another point than the public area holds")
				}
			}
		}
		if a, err := ParseAttest(in); err == nil {
			if !bytes.Equal(tpm2.Marshal(*a), in) {
				t.Fatal("ParseAttest accepted a non-canonical encoding")
			}
			_, cerr := a.Attested.Certify()
			_, qerr := a.Attested.Quote()
			if (cerr == nil) != (a.Type == tpm2.TPMSTAttestCertify) || (qerr == nil) != (a.Type == tpm2.TPMSTAttestQuote) {
				t.Fatalf("attestation of type %v: Certify err %v, Quote err %v", a.Type, cerr, qerr)
			}
		}
		if s, err := ParseSignature(in); err == nil {
			if !bytes.Equal(tpm2.Marshal(*s), in) {
				t.Fatal("ParseSignature accepted a non-canonical encoding")
			}
			if _, err := s.Signature.ECDSA(); (err == nil) != (s.SigAlg == tpm2.TPMAlgECDSA) {
				t.Fatalf("signature of algorithm %v: ECDSA err %v", s.SigAlg, err)
			}
		}
	})
}
