package pkcs11

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// Software models of the token operations, with keys of known value, for
// the golden bytes of the schemes' sealed data. The layout code is the
// one the token path runs (sealCBC, openCBC, sealECDH, openECDH).

func swCBC(key []byte) (enc, dec func(iv, in []byte) ([]byte, error)) {
	blk, _ := aes.NewCipher(key)
	enc = func(iv, pt []byte) ([]byte, error) {
		n := cbcBlock - len(pt)%cbcBlock
		p := append(bytes.Clone(pt), bytes.Repeat([]byte{byte(n)}, n)...)
		out := make([]byte, len(p))
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, p)
		return out, nil
	}
	dec = func(iv, ct []byte) ([]byte, error) {
		if len(ct) == 0 || len(ct)%cbcBlock != 0 {
			return nil, backend.ErrSealedData
		}
		out := make([]byte, len(ct))
		cipher.NewCBCDecrypter(blk, iv).CryptBlocks(out, ct)
		n := int(out[len(out)-1])
		if n == 0 || n > cbcBlock {
			return nil, backend.ErrSealedData
		}
		return out[:len(out)-n], nil
	}
	return enc, dec
}

func swCBCOps() cbcOps {
	e1, d1 := swCBC(bytes.Repeat([]byte{0x11}, 32)) // destroy key
	e2, d2 := swCBC(bytes.Repeat([]byte{0x22}, 32)) // wrapping key
	macKey := bytes.Repeat([]byte{0x33}, 32)
	return cbcOps{encInner: e1, decInner: d1, encOuter: e2, decOuter: d2, mac: func(m []byte) ([]byte, error) {
		h := hmac.New(sha256.New, macKey)
		h.Write(m)
		return h.Sum(nil), nil
	}}
}

const goldenCBC = "02" + // version 2: AES-CBC-HMAC
	"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf" + // iv2
	// c2: AES-256-CBC-PAD(wrapping key, iv2, iv1 || AES-256-CBC-PAD(destroy key, iv1, "secret" || check)), 64 bytes
	"f0df29ca5db330e24f0a2193618ea2bd801809ed62e512479d8ae290fdec2e24" +
	"cbcff3e241ee79e6ee52eb02e6c97db39b56312e2c1b378650ba78a9a5c58e06" +
	"545080fd692fd07c4edb3e314f1e1afbc7dcd8b0d64e31b860c14e148687b746" // HMAC-SHA256(MAC key, macInput), 32 bytes

func TestSealedCBCGolden(t *testing.T) {
	iv1, _ := hex.DecodeString("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
	iv2, _ := hex.DecodeString("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf")
	got, err := sealCBC(swCBCOps(), goldenStoreID, "L", []byte("secret"), iv1, iv2)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(got); h != goldenCBC {
		t.Fatalf("AES-CBC-HMAC sealed data changed:\n got %s\nwant %s", h, goldenCBC)
	}
	if len(got) != cbcSealedLen(len("secret")) {
		t.Fatalf("%d bytes, cbcSealedLen says %d", len(got), cbcSealedLen(6))
	}
	// The tag, recomputed from the written-out MAC input.
	h := hmac.New(sha256.New, bytes.Repeat([]byte{0x33}, 32))
	h.Write([]byte("enigm/v1/pkcs11/seal/cbc-hmac\x00"))
	h.Write(goldenStoreID)
	h.Write([]byte{0, 1, 'L'})
	h.Write(got[:len(got)-32])
	if !bytes.Equal(h.Sum(nil), got[len(got)-32:]) {
		t.Fatal("the tag is not HMAC-SHA256 over the documented input")
	}
	pt, err := openCBC(swCBCOps(), goldenStoreID, "L", got)
	if err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q, %v", pt, err)
	}
	// Every flipped bit fails the tag; another label or store fails too.
	for i := range got {
		bad := bytes.Clone(got)
		bad[i] ^= 0x80
		if _, err := openCBC(swCBCOps(), goldenStoreID, "L", bad); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("byte %d flipped: err = %v, want ErrSealedData", i, err)
		}
	}
	if _, err := openCBC(swCBCOps(), goldenStoreID, "M", got); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("another label: err = %v", err)
	}
	if _, err := openCBC(swCBCOps(), goldenKeyID, "L", got); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("another store: err = %v", err)
	}
}

func fixedP256(b byte) *ecdh.PrivateKey {
	k, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		panic(err)
	}
	return k
}

const goldenECDH = "03" + // version 3: P-256 ECDH
	"046ff03b949241ce1dadd43519e6960e0a85b41a69a05c328103aa2bce1594ca16" +
	"3c4f753a55bf01dc53f6c0b0c7eee78b40c6ff7d25a96e2282b989cef71c144a" + // E, the ephemeral public key (uncompressed), 65 bytes
	"c0c1c2c3c4c5c6c7c8c9cacb" + // nonce
	"a306c27b888b318faf65a212108e0815ee584c206e9d" // AES-256-GCM(k, nonce, ad, "secret"), 6 + 16 bytes

func TestSealedECDHGolden(t *testing.T) {
	eph, labelKey, destroyKey := fixedP256(0x01), fixedP256(0x02), fixedP256(0x03)
	nonce, _ := hex.DecodeString("c0c1c2c3c4c5c6c7c8c9cacb")
	got, err := sealECDH(goldenStoreID, "L", []byte("secret"), eph, labelKey.PublicKey(), destroyKey.PublicKey(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(got); h != goldenECDH {
		t.Fatalf("P-256 ECDH sealed data changed:\n got %s\nwant %s", h, goldenECDH)
	}
	// The key, recomputed from the written-out HKDF inputs.
	zl, _ := labelKey.ECDH(eph.PublicKey())
	zd, _ := destroyKey.ECDH(eph.PublicKey())
	info := []byte("enigm/v1/pkcs11/ecdh-kek\x00\x00\x01L")
	info = append(append(append(info, eph.PublicKey().Bytes()...), labelKey.PublicKey().Bytes()...), destroyKey.PublicKey().Bytes()...)
	k, _ := hkdf.Key(sha256.New, append(zl, zd...), goldenStoreID, string(info), 32)
	a, _ := gcm(k)
	if pt, err := a.Open(nil, nonce, got[1+65+12:], []byte("enigm/v1/pkcs11/seal/ecdh\x00"+string(goldenStoreID)+"L")); err != nil || string(pt) != "secret" {
		t.Fatalf("the documented derivation does not open the golden bytes: %v", err)
	}
	derive := func(d *ecdh.PrivateKey) func(bool, []byte) ([]byte, error) {
		return func(destroy bool, e []byte) ([]byte, error) {
			pub, err := ecdh.P256().NewPublicKey(e)
			if err != nil {
				return nil, err
			}
			if destroy {
				return destroyKey.ECDH(pub)
			}
			return d.ECDH(pub)
		}
	}
	pt, err := openECDH(goldenStoreID, "L", got, labelKey.PublicKey(), destroyKey.PublicKey(), derive(labelKey))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q, %v", pt, err)
	}
	for i := range got {
		bad := bytes.Clone(got)
		bad[i] ^= 0x80
		if _, err := openECDH(goldenStoreID, "L", bad, labelKey.PublicKey(), destroyKey.PublicKey(), derive(labelKey)); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("byte %d flipped: err = %v, want ErrSealedData", i, err)
		}
	}
	// Another class's key (a token answering with the wrong key) fails.
	if _, err := openECDH(goldenStoreID, "L", got, labelKey.PublicKey(), destroyKey.PublicKey(), derive(fixedP256(0x04))); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("wrong label key: err = %v", err)
	}
	if _, err := openECDH(goldenStoreID, "M", got, labelKey.PublicKey(), destroyKey.PublicKey(), derive(labelKey)); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("another label: err = %v", err)
	}
}

func TestStateGoldenSchemes(t *testing.T) {
	for _, tc := range []struct {
		scheme uint8
		want   string
	}{
		{schemeCBCHMAC, "a5" + "0101" + "0202" + goldenState[10:]}, // 2: scheme 2 (AES-CBC-HMAC)
		{schemeECDH, "a5" + "0101" + "0203" + goldenState[10:]},    // 2: scheme 3 (P-256 ECDH)
	} {
		s := state{Version: 1, Scheme: tc.scheme, StoreID: goldenStoreID, Serial: "0123456789abcdef", Label: "enigm"}
		if err := s.validate(); err != nil {
			t.Fatal(err)
		}
		if got, err := wireHex(s); err != nil || got != tc.want {
			t.Fatalf("scheme %d state: %s, %v; want %s", tc.scheme, got, err, tc.want)
		}
	}
	if (&state{Version: 1, Scheme: 4, StoreID: goldenStoreID, Serial: "1"}).validate() == nil {
		t.Fatal("scheme 4 accepted")
	}
}

func TestParseSealedSchemes(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []byte
		ok   bool
	}{
		{"cbc minimum", append([]byte{2}, make([]byte, cbcMinSealed-1)...), true},
		{"cbc one block short", append([]byte{2}, make([]byte, cbcMinSealed-17)...), false},
		{"cbc not whole blocks", append([]byte{2}, make([]byte, cbcMinSealed)...), false},
		{"cbc maximum", append([]byte{2}, make([]byte, cbcMaxSealed-1)...), true},
		{"cbc over the maximum", append([]byte{2}, make([]byte, cbcMaxSealed+15)...), false},
		{"cbc, gcm version byte", append([]byte{1}, make([]byte, cbcMinSealed-1)...), false},
	} {
		err := parseSealedCBC(tc.in)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, backend.ErrSealedData)) {
			t.Errorf("%s: err = %v", tc.desc, err)
		}
	}
	e := fixedP256(1).PublicKey().Bytes()
	for _, tc := range []struct {
		desc string
		in   []byte
		ok   bool
	}{
		{"ecdh minimum", append(append([]byte{3}, e...), make([]byte, 28)...), true},
		{"ecdh one short", append(append([]byte{3}, e...), make([]byte, 27)...), false},
		{"ecdh maximum", append(append([]byte{3}, e...), make([]byte, 28+MaxSealSize)...), true},
		{"ecdh over the maximum", append(append([]byte{3}, e...), make([]byte, 29+MaxSealSize)...), false},
		{"ecdh point off the curve", append(append([]byte{3, 4}, make([]byte, 64)...), make([]byte, 28)...), false},
		{"ecdh, cbc version byte", append(append([]byte{2}, e...), make([]byte, 28)...), false},
	} {
		_, _, _, err := parseSealedECDH(tc.in)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, backend.ErrSealedData)) {
			t.Errorf("%s: err = %v", tc.desc, err)
		}
	}
}

func FuzzParseSealedCBC(f *testing.F) {
	f.Add(append([]byte{2}, make([]byte, cbcMinSealed-1)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if err := parseSealedCBC(in); refused(t, err, backend.ErrSealedData) {
			return
		}
		// Accepted: then it opens or fails closed.
		if _, err := openCBC(swCBCOps(), goldenStoreID, "L", in); err != nil && !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("open: error without ErrSealedData: %v", err)
		}
	})
}

func FuzzParseSealedECDH(f *testing.F) {
	f.Add(append(append([]byte{3}, fixedP256(1).PublicKey().Bytes()...), make([]byte, 28)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		eph, nonce, ct, err := parseSealedECDH(in)
		if refused(t, err, backend.ErrSealedData) {
			return
		}
		if !bytes.Equal(append(append(append([]byte{3}, eph.Bytes()...), nonce...), ct...), in) {
			t.Fatal("bad split")
		}
	})
}

func wireHex(v any) (string, error) {
	b, err := wire.Marshal(v)
	return hex.EncodeToString(b), err
}

func TestStateGoldenPINDestroy(t *testing.T) {
	const want = "a6" + "0101" + "0201" + // map(6), version 1, scheme 1
		"0350" + "000102030405060708090a0b0c0d0e0f" + "0470" + "30313233343536373839616263646566" + "0565" + "656e69676d" +
		"06f5" // 6: true, the destroy key is behind the PIN
	s := state{Version: 1, Scheme: 1, StoreID: goldenStoreID, Serial: "0123456789abcdef", Label: "enigm", PINDestroy: true}
	if got, err := wireHex(s); err != nil || got != want {
		t.Fatalf("state: %s, %v; want %s", got, err, want)
	}
	p, err := parseState(unhex(want))
	if err != nil || !p.PINDestroy {
		t.Fatalf("parse: %+v, %v", p, err)
	}
	// false is omitted: a state with 6: false is not canonical.
	if _, err := parseState(unhex("a6" + want[2:len(want)-2] + "f4")); !errors.Is(err, backend.ErrState) {
		t.Fatalf("6: false accepted: %v", err)
	}
}
