package pkcs11

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// unhex decodes test constants; they are literals, so a failure is a bug
// in the test file itself.
func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	goldenStoreID = unhex("000102030405060708090a0b0c0d0e0f")
	goldenKeyID   = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
	// The P-256 base point, uncompressed.
	goldenPoint = unhex("04" +
		"6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" +
		"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
)

const goldenState = "a5" + // map(5)
	"0101" + // 1: version 1
	"0201" + // 2: scheme 1 (AES-256-GCM, destroy key then wrapping key)
	"0350" + "000102030405060708090a0b0c0d0e0f" + // 3: store id, bytes(16)
	"0470" + "30313233343536373839616263646566" + // 4: serial, text(16) "0123456789abcdef"
	"0565" + "656e69676d" // 5: token label, text(5) "enigm"

func TestStateGolden(t *testing.T) {
	enc, err := wire.Marshal(state{Version: 1, Scheme: 1, StoreID: goldenStoreID, Serial: "0123456789abcdef", Label: "enigm"})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(enc); got != goldenState {
		t.Fatalf("state encoding changed:\n got %s\nwant %s", got, goldenState)
	}
	s, err := parseState(enc)
	if err != nil || s.Serial != "0123456789abcdef" || s.Label != "enigm" || !bytes.Equal(s.StoreID, goldenStoreID) {
		t.Fatalf("parse: %+v, %v", s, err)
	}
}

const goldenBlob = "a4" + // map(4)
	"0101" + // 1: version 1
	"0250" + "000102030405060708090a0b0c0d0e0f" + // 2: store id, bytes(16)
	"0350" + "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff" + // 3: key id, bytes(16)
	"045841" + "04" + // 4: public key, bytes(65): uncompressed point
	"6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" + //   x
	"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5" //   y

func TestBindingBlobGolden(t *testing.T) {
	enc, err := wire.Marshal(bindingBlob{Version: 1, StoreID: goldenStoreID, KeyID: goldenKeyID, Public: goldenPoint})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(enc); got != goldenBlob {
		t.Fatalf("blob encoding changed:\n got %s\nwant %s", got, goldenBlob)
	}
	_, pub, err := parseBindingBlob(enc)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if b, err := pub.Bytes(); err != nil || hex.EncodeToString(b[1:33]) != "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" {
		t.Fatalf("parsed point: %x, %v", b, err)
	}
}

// The names and additional data the token sees are part of the format (the
// values were checked with an independent SHA-256 implementation): a
// change would make existing stores unfindable or unopenable.
func TestDerivationsGolden(t *testing.T) {
	for _, tc := range []struct{ desc, got, want string }{
		{"object label", objectLabel(goldenStoreID), "enigm:000102030405060708090a0b0c0d0e0f"},
		{"destroy key id", hex.EncodeToString(objectID(goldenStoreID, roleDestroy, nil)), "ec21495791567d25b54c10eb925b1903"},
		{"identity kek id", hex.EncodeToString(objectID(goldenStoreID, roleKEK, []byte("enigm/v1/kek/identity"))), "42ec7ea23681ca232bd5dd03690732e7"},
		{"binding key id", hex.EncodeToString(objectID(goldenStoreID, roleBinding, goldenKeyID)), "e7548dbe76c41612eb159e16a0215997"},
		{"outer additional data", string(sealAD("kek", goldenStoreID, "L")), "enigm/v1/pkcs11/seal/kek\x00" + string(goldenStoreID) + "L"},
		{"inner additional data", string(sealAD("destroy", goldenStoreID, "L")), "enigm/v1/pkcs11/seal/destroy\x00" + string(goldenStoreID) + "L"},
		{"check value", hex.EncodeToString(checkValue(goldenStoreID, "L", []byte("secret"))), "7aa69803942c9c2691800a309427eb43"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s changed:\n got %q\nwant %q", tc.desc, tc.got, tc.want)
		}
	}
}

func TestParseSealed(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"one short of the minimum", append([]byte{1}, make([]byte, sealOverhead-2)...), false},
		{"minimum (empty secret)", append([]byte{1}, make([]byte, sealOverhead-1)...), true},
		{"maximum", append([]byte{1}, make([]byte, maxSealed-1)...), true},
		{"one over the maximum", append([]byte{1}, make([]byte, maxSealed)...), false},
		{"unknown version", append([]byte{2}, make([]byte, sealOverhead)...), false},
	} {
		iv, ct, err := parseSealed(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.desc, err)
			continue
		}
		if err != nil && !errors.Is(err, backend.ErrSealedData) {
			t.Errorf("%s: err = %v, want ErrSealedData", tc.desc, err)
		}
		if err == nil && (len(iv) != ivSize || len(ct) != len(tc.in)-1-ivSize) {
			t.Errorf("%s: split into %d + %d bytes", tc.desc, len(iv), len(ct))
		}
	}
}

func TestStateRejects(t *testing.T) {
	good := state{Version: 1, Scheme: 1, StoreID: goldenStoreID, Serial: "0123456789abcdef", Label: "enigm"}
	for desc, mutate := range map[string]func(*state){
		"version":           func(s *state) { s.Version = 2 },
		"scheme":            func(s *state) { s.Scheme = 0 },
		"short store id":    func(s *state) { s.StoreID = s.StoreID[:15] },
		"empty serial":      func(s *state) { s.Serial = "" },
		"long serial":       func(s *state) { s.Serial = "0123456789abcdef0" },
		"control in serial": func(s *state) { s.Serial = "01\n3" },
		"long label":        func(s *state) { s.Label = strings.Repeat("x", 33) },
		"non-UTF-8 label":   func(s *state) { s.Label = "\xff" },
	} {
		s := good
		mutate(&s)
		stateRejected(t, desc, s)
	}
	enc, _ := wire.Marshal(good)
	if _, err := parseState(append(enc, 0)); !errors.Is(err, backend.ErrState) {
		t.Errorf("trailing byte: err = %v, want ErrState", err)
	}
}

// stateRejected checks that parseState refuses the encoding of s.
func stateRejected(t *testing.T, desc string, s state) {
	t.Helper()
	enc, err := wire.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseState(enc); !errors.Is(err, backend.ErrState) {
		t.Errorf("%s: err = %v, want ErrState", desc, err)
	}
}

func TestBlobRejects(t *testing.T) {
	good := bindingBlob{Version: 1, StoreID: goldenStoreID, KeyID: goldenKeyID, Public: goldenPoint}
	for desc, mutate := range map[string]func(*bindingBlob){
		"version":          func(b *bindingBlob) { b.Version = 0 },
		"short key id":     func(b *bindingBlob) { b.KeyID = b.KeyID[:8] },
		"compressed point": func(b *bindingBlob) { b.Public = append([]byte{2}, goldenPoint[1:33]...) },
		"point off curve":  func(b *bindingBlob) { p := bytes.Clone(goldenPoint); p[64] ^= 1; b.Public = p },
	} {
		b := good
		mutate(&b)
		enc, err := wire.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := parseBindingBlob(enc); !errors.Is(err, backend.ErrState) {
			t.Errorf("%s: err = %v, want ErrState", desc, err)
		}
	}
}

// refused reports whether a decoder refused its input (err is not nil);
// a refusal that does not wrap sentinel fails the test.
func refused(t *testing.T, err, sentinel error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error without %v: %v", sentinel, err)
	}
	return err != nil
}

func FuzzParseState(f *testing.F) {
	f.Add(unhex(goldenState))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := parseState(in)
		if refused(t, err, backend.ErrState) {
			return
		}
		if err := s.validate(); err != nil {
			t.Fatalf("accepted an invalid state: %v", err)
		}
		again, err := wire.Marshal(s)
		if err != nil || !bytes.Equal(again, in) {
			t.Fatalf("accepted a non-canonical encoding")
		}
	})
}

func FuzzParseBindingBlob(f *testing.F) {
	f.Add(unhex(goldenBlob))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, pub, err := parseBindingBlob(in)
		if refused(t, err, backend.ErrState) {
			return
		}
		if enc, err := pub.Bytes(); err != nil || !bytes.Equal(enc, b.Public) {
			t.Fatal("the parsed public key is not the blob's")
		}
		again, err := wire.Marshal(b)
		if err != nil || !bytes.Equal(again, in) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}

func FuzzParseSealed(f *testing.F) {
	f.Add(append([]byte{1}, make([]byte, sealOverhead+31)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		iv, ct, err := parseSealed(in)
		if refused(t, err, backend.ErrSealedData) {
			return
		}
		if len(iv) != ivSize || len(ct) < sealOverhead-1-ivSize || len(ct) > maxSealed-1-ivSize ||
			!bytes.Equal(append(append([]byte{in[0]}, iv...), ct...), in) {
			t.Fatal("bad split")
		}
	})
}
