package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
	"github.com/enigm/enigm/internal/testkit"
)

// testdata/vectors.json comes from the TPM simulator (see the tpm
// package's TestGenerateTestdata): one valid evidence and negatives.
type vector struct {
	Desc     string `json:"desc"`
	Type     string `json:"type"`
	Evidence string `json:"evidence"`
	Nonce    string `json:"nonce"`
	Trusted  string `json:"trusted"`
	WantErr  string `json:"wantErr"`
	WantKey  string `json:"wantKey"`
}

var wantErrs = map[string]error{"invalid": ErrInvalid, "untrusted": ErrUntrusted, "nonce": ErrNonce}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	testkit.NoErr(t, json.Unmarshal(raw, &vs))
	if len(vs) < 2 {
		t.Fatal("no vectors")
	}
	return vs
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Desc, func(t *testing.T) {
			ev := backend.Evidence{Type: v.Type, Data: unhex(t, v.Evidence)}
			res, err := Verify(ev, unhex(t, v.Nonce), AK(unhex(t, v.Trusted)))
			if v.WantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				pub, err := format.ParsePublic(unhex(t, v.WantKey))
				if err != nil {
					t.Fatal(err)
				}
				want, err := format.P256Public(pub)
				if err != nil || !res.Key.Equal(want) {
					t.Fatalf("certified key differs: %v", err)
				}
				if !bytes.Equal(res.KeyName, format.Name(unhex(t, v.WantKey))) {
					t.Fatal("key name differs")
				}
				return
			}
			want, ok := wantErrs[v.WantErr]
			if !ok {
				t.Fatalf("unknown wantErr %q", v.WantErr)
			}
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
		})
	}
}

// Every single-byte change of valid evidence fails, and never panics.
func TestFlips(t *testing.T) {
	v := loadVectors(t)[0]
	data, nonce, ak := unhex(t, v.Evidence), unhex(t, v.Nonce), AK(unhex(t, v.Trusted))
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x80
		if _, err := Verify(backend.Evidence{Type: Type, Data: bad}, nonce, ak); err == nil {
			t.Fatalf("byte %d flipped: verified", i)
		}
	}
}

func FuzzVerify(f *testing.F) {
	v := vectorsForFuzz(f)
	f.Add(v.data)
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := Verify(backend.Evidence{Type: Type, Data: in}, v.nonce, v.ak)
		if err == nil && res.Key == nil {
			t.Fatal("verified without a key")
		}
	})
}

type fuzzVector struct {
	data, nonce []byte
	ak          AK
}

func vectorsForFuzz(f *testing.F) fuzzVector {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil || len(vs) == 0 {
		f.Fatal(err)
	}
	d, _ := hex.DecodeString(vs[0].Evidence)
	n, _ := hex.DecodeString(vs[0].Nonce)
	a, _ := hex.DecodeString(vs[0].Trusted)
	return fuzzVector{d, n, AK(a)}
}
