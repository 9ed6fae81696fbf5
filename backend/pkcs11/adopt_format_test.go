package pkcs11

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/enigm/enigm/backend"
)

// The persisted formats of schemeECDHAdopted (a P-256 key the user made
// on the token, adopted by its CKA_ID): the state's keys 7 and 8, and the
// sealed data of version 4.

const goldenStateAdopted = "a7" + // map(7)
	"0101" + // 1: version 1
	"0204" + // 2: scheme 4 (P-256 ECDH with an adopted key)
	"0350" + "000102030405060708090a0b0c0d0e0f" + // 3: store id, bytes(16)
	"0470" + "30313233343536373839616263646566" + // 4: serial, text(16)
	"0565" + "656e69676d" + // 5: token label, text(5) "enigm"
	"0741" + "03" + // 7: the adopted key's CKA_ID, bytes(1): 03 (ykcs11/OpenSC: PIV slot 9d)
	"085841" + "04" + // 8: its public key, bytes(65), uncompressed
	"6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" + //   x
	"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5" //   y

func adoptedGoldenState() state {
	return state{Version: 1, Scheme: schemeECDHAdopted, StoreID: goldenStoreID, Serial: "0123456789abcdef", Label: "enigm",
		KeyID: []byte{0x03}, Public: goldenPoint}
}

func TestStateGoldenAdopted(t *testing.T) {
	s := adoptedGoldenState()
	if got, err := wireHex(s); err != nil || got != goldenStateAdopted {
		t.Fatalf("adopted state: %s, %v\nwant %s", got, err, goldenStateAdopted)
	}
	p, err := parseState(unhex(goldenStateAdopted))
	if err != nil || !bytes.Equal(p.KeyID, []byte{3}) || !bytes.Equal(p.Public, goldenPoint) {
		t.Fatalf("parse: %+v, %v", p, err)
	}
	// The states of the other schemes are unchanged (TestStateGolden*),
	// and they never carry keys 7 or 8.
	plain := unhex(goldenState)
	for desc, in := range map[string][]byte{
		"scheme 1 with key 7":       append(append([]byte{0xa6}, plain[1:]...), 0x07, 0x41, 0x03),
		"scheme 1 with empty key 7": append(append([]byte{0xa6}, plain[1:]...), 0x07, 0x40),
		"scheme 4 with empty key 7": unhex("a7" + goldenStateAdopted[2:60] + "0740" + goldenStateAdopted[64:]),
	} {
		if _, err := parseState(in); !errors.Is(err, backend.ErrState) {
			t.Errorf("%s: err = %v, want ErrState", desc, err)
		}
	}
	for desc, mutate := range map[string]func(*state){
		"no key id":                  func(s *state) { s.KeyID = nil },
		"long key id":                func(s *state) { s.KeyID = make([]byte, maxAdoptIDSize+1) },
		"no public key":              func(s *state) { s.Public = nil },
		"short public key":           func(s *state) { s.Public = goldenPoint[:33] },
		"point off curve":            func(s *state) { p := bytes.Clone(goldenPoint); p[64] ^= 1; s.Public = p },
		"PIN destroy":                func(s *state) { s.PINDestroy = true },
		"scheme 3 with id":           func(s *state) { s.Scheme = schemeECDH },
		"scheme 3 with only a point": func(s *state) { s.Scheme, s.KeyID = schemeECDH, nil },
	} {
		s := adoptedGoldenState()
		mutate(&s)
		stateRejected(t, desc, s)
	}
}

// goldenAdoptedCT is the ciphertext of the version 4 blob sealing
// "secret" for label "L" (fixed scalars and nonce): AES-256-GCM(k, nonce,
// ad, "secret"), 6 + 16 bytes. The bytes before it are checked one by one.
const goldenAdoptedCT = "140475a3db1df092581e1018e7ebbdb64eedb9140584"

func TestSealedAdoptedGolden(t *testing.T) {
	eph, key := fixedP256(0x01), fixedP256(0x02)
	nonce := unhex("c0c1c2c3c4c5c6c7c8c9cacb")
	got, err := ecdhAdopted.seal(goldenStoreID, "L", []byte("secret"), eph, []*ecdh.PublicKey{key.PublicKey()}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+65+12+6+16 || got[0] != sealAdoptedVersion || !bytes.Equal(got[1:66], eph.PublicKey().Bytes()) ||
		!bytes.Equal(got[66:78], nonce) {
		t.Fatalf("layout: %x", got)
	}
	if h := hex.EncodeToString(got[78:]); h != goldenAdoptedCT {
		t.Fatalf("adopted-key sealed data changed:\n got %s\nwant %s", h, goldenAdoptedCT)
	}
	// The key, recomputed from the written-out HKDF inputs.
	z, _ := key.ECDH(eph.PublicKey())
	info := append([]byte("enigm/v1/pkcs11/ecdh-adopted-kek\x00\x00\x01L"), eph.PublicKey().Bytes()...)
	info = append(info, key.PublicKey().Bytes()...)
	k, _ := hkdf.Key(sha256.New, z, goldenStoreID, string(info), 32)
	a, _ := gcm(k)
	if pt, err := a.Open(nil, nonce, got[78:], []byte("enigm/v1/pkcs11/seal/ecdh-adopted\x00"+string(goldenStoreID)+"L")); err != nil || string(pt) != "secret" {
		t.Fatalf("the documented derivation does not open the golden bytes: %v", err)
	}
	derive := func(d *ecdh.PrivateKey) func(int, []byte) ([]byte, error) {
		return func(_ int, e []byte) ([]byte, error) {
			pub, err := ecdh.P256().NewPublicKey(e)
			if err != nil {
				return nil, err
			}
			return d.ECDH(pub)
		}
	}
	pubs := []*ecdh.PublicKey{key.PublicKey()}
	if pt, err := ecdhAdopted.open(goldenStoreID, "L", got, pubs, derive(key)); err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q, %v", pt, err)
	}
	for i := range got {
		bad := bytes.Clone(got)
		bad[i] ^= 0x80
		if _, err := ecdhAdopted.open(goldenStoreID, "L", bad, pubs, derive(key)); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("byte %d flipped: err = %v, want ErrSealedData", i, err)
		}
	}
	// Another key under the same id (the slot regenerated) and another
	// label fail; so does the blob read as scheme 3 and scheme 3's as 4.
	if _, err := ecdhAdopted.open(goldenStoreID, "L", got, pubs, derive(fixedP256(0x04))); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("another key: err = %v", err)
	}
	if _, err := ecdhAdopted.open(goldenStoreID, "M", got, pubs, derive(key)); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("another label: err = %v", err)
	}
	if _, _, _, err := parseSealedECDH(got); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("a version 4 blob parses as scheme 3: %v", err)
	}
	three := bytes.Clone(got)
	three[0] = sealECDHVersion
	if _, _, _, err := ecdhAdopted.parse(three); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("a version 3 blob parses as scheme 4: %v", err)
	}
}

func FuzzParseSealedAdopted(f *testing.F) {
	eph := fixedP256(0x01)
	f.Add(append(append(append([]byte{sealAdoptedVersion}, eph.PublicKey().Bytes()...), make([]byte, 12)...), make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, nonce, ct, err := ecdhAdopted.parse(in)
		if err != nil {
			if !errors.Is(err, backend.ErrSealedData) {
				t.Fatalf("error without ErrSealedData: %v", err)
			}
			return
		}
		again := append(append(append([]byte{sealAdoptedVersion}, e.Bytes()...), nonce...), ct...)
		if !bytes.Equal(again, in) {
			t.Fatal("parse does not give back the input")
		}
	})
}
