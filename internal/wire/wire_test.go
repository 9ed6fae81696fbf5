package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

type msg struct {
	A uint64 `cbor:"1,keyasint"`
	B []byte `cbor:"2,keyasint,omitempty"`
	C string `cbor:"3,keyasint,omitempty"`
}

type nested struct {
	N []nested `cbor:"1,keyasint,omitempty"`
}

func TestRoundTripGolden(t *testing.T) {
	b, err := Marshal(msg{A: 1, B: []byte{0xaa}, C: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// a3            map(3)
	//   01 01       1: 1
	//   02 41 aa    2: h'aa'
	//   03 61 78    3: "x"
	if got, want := hex.EncodeToString(b), "a30101"+"0241aa"+"036178"; got != want {
		t.Fatalf("encoding = %s, want %s", got, want)
	}
	var m msg
	if err := Unmarshal(b, &m, 100); err != nil || m.A != 1 || !bytes.Equal(m.B, []byte{0xaa}) || m.C != "x" {
		t.Fatalf("decode: %+v %v", m, err)
	}
}

func TestStrictRejects(t *testing.T) {
	deep := strings.Repeat("a101", 12) + "a0"
	cases := []struct {
		desc string
		hex  string
		into any
		want error
	}{
		{"duplicate key", "a201010102", &msg{}, nil},
		{"unsorted keys", "a202400101", &msg{}, ErrNonCanonical},
		{"non-minimal integer", "a1011801", &msg{}, ErrNonCanonical},
		{"indefinite map", "bf0101ff", &msg{}, nil},
		{"indefinite bytes", "a1025f41aaff", &msg{}, nil},
		{"tag", "c1a10101", &msg{}, nil},
		{"float value", "a101f93c00", &msg{}, nil},
		{"unknown field", "a20101182a01", &msg{}, nil},
		{"trailing data", "a1010100", &msg{}, nil},
		{"text for bytes", "a1026178", &msg{}, nil},
		{"negative for uint", "a10120", &msg{}, nil},
		{"too deep", deep, &nested{}, nil},
		{"truncated", "a30101", &msg{}, nil},
		{"empty", "", &msg{}, nil},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			b, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			err = Unmarshal(b, c.into, 0)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	b, _ := Marshal(msg{A: 1, B: make([]byte, 100)})
	if err := Unmarshal(b, &msg{}, 50); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestFloatTypesRejected(t *testing.T) {
	type bad struct {
		F float64 `cbor:"1,keyasint"`
	}
	if _, err := Marshal(bad{}); err == nil {
		t.Fatal("marshalled a float type")
	}
	if err := Unmarshal([]byte{0xa0}, &bad{}, 0); err == nil {
		t.Fatal("unmarshalled into a float type")
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := Marshal(msg{A: 7, B: []byte("bytes"), C: "text"})
	f.Add(good)
	f.Add([]byte{0xa2, 0x01, 0x01, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m msg
		if Unmarshal(b, &m, 0) != nil {
			return
		}
		again, err := Marshal(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted input that does not re-encode identically: %x vs %x", b, again)
		}
	})
}
