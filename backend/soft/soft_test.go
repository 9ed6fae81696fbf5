package soft

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/internal/wire"
)

// fast parameters keep the suite quick; production uses Recommended.
var fast = Params{Time: 1, MemoryKiB: 64, Threads: 1}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b, err := New(Options{Params: fast})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestDefaultIsRFC9106(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.params != (Params{Time: 3, MemoryKiB: 65536, Threads: 4}) {
		t.Fatalf("default params %+v", b.params)
	}
}

// A tampered state naming absurd parameters is refused before any work.
func TestBoundsOnRead(t *testing.T) {
	b, _ := New(Options{Params: fast})
	good, err := b.Provision(context.Background(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	var s state
	if err := wire.Unmarshal(good, &s, 0); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*state){
		"huge memory":  func(s *state) { s.MemoryKiB = 1 << 31 },
		"huge time":    func(s *state) { s.Time = 1 << 30 },
		"zero time":    func(s *state) { s.Time = 0 },
		"many threads": func(s *state) { s.Threads = 255 },
		"too much work": func(s *state) {
			s.Time, s.MemoryKiB = 10, 1<<20
		},
		"short salt":  func(s *state) { s.Salt = s.Salt[:8] },
		"version":     func(s *state) { s.Version = 2 },
		"unknown kdf": func(s *state) { s.KDF = 9 },
	}
	for desc, mutate := range cases {
		t.Run(desc, func(t *testing.T) {
			bad := s
			bad.Salt = append([]byte(nil), s.Salt...)
			mutate(&bad)
			enc, err := wire.Marshal(bad)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Open(context.Background(), enc, []byte("pw")); !errors.Is(err, backend.ErrState) {
				t.Fatalf("err = %v, want ErrState", err)
			}
		})
	}
}

// Golden bytes of the state encoding, annotated.
func TestStateGolden(t *testing.T) {
	s := state{Version: 1, KDF: 1, Time: 3, MemoryKiB: 65536, Threads: 4,
		Salt: make([]byte, 16), Check: make([]byte, 28)}
	enc, err := wire.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := "a7" + // map(7)
		"0101" + // 1: version 1
		"0201" + // 2: KDF 1 (Argon2id)
		"0303" + // 3: time 3
		"041a00010000" + // 4: memory 65536 KiB
		"0504" + // 5: threads 4
		"0650" + "00000000000000000000000000000000" + // 6: salt, 16 bytes
		"07581c" + "00000000000000000000000000000000000000000000000000000000" // 7: check, 28 bytes
	if got := hex.EncodeToString(enc); got != want {
		t.Fatalf("state encoding changed:\n got %s\nwant %s", got, want)
	}
}

func FuzzParseState(f *testing.F) {
	b, _ := New(Options{Params: fast})
	good, _ := b.Provision(context.Background(), []byte("pw"))
	f.Add(good)
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := parseState(in)
		if err != nil {
			return
		}
		if err := s.params().check(); err != nil {
			t.Fatal("parseState accepted out-of-bounds parameters")
		}
	})
}
