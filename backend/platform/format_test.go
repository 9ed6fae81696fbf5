package platform

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// goldenPoint is a valid P-256 point (the generator).
var goldenPoint, _ = hex.DecodeString("046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" +
	"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")

func TestStateGolden(t *testing.T) {
	s := state{Version: 1, Scheme: schemeECIES, StoreID: seq(16, 0x10), Level: bridge.LevelSecureEnclave, StorePub: goldenPoint,
		Time: 3, MemoryKiB: 65536, Threads: 4, Salt: seq(16, 0x20),
		Access: access{UnlockedOnly: true, Auth: 3, ValiditySecs: 60, DataProtection: bridge.ProtectionWhenUnlocked},
		Check:  seq(29, 0x30)}
	got, err := wire.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"ab",   // map(11)
		"0101", // 1: version 1
		"0202", // 2: scheme 2 (ECIES)
		"0350" + hex.EncodeToString(seq(16, 0x10)),            // 3: store id
		"046e" + hex.EncodeToString([]byte("secure_enclave")), // 4: level
		"055841" + hex.EncodeToString(goldenPoint),            // 5: store public key
		"0603",         // 6: Argon2id time
		"071a00010000", // 7: memory KiB
		"0804",         // 8: threads
		"0950" + hex.EncodeToString(seq(16, 0x20)), // 9: salt
		"0aa4" + "01f5" + "0203" + "03183c" + "04781e" + hex.EncodeToString([]byte(bridge.ProtectionWhenUnlocked)), // 10: access
		"0b581d" + hex.EncodeToString(seq(29, 0x30)),                                                               // 11: check value
	}, "")
	if hex.EncodeToString(got) != want {
		t.Fatalf("state encoding changed:\n got %x\nwant %s", got, want)
	}
	back, err := parseState(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.StoreID, s.StoreID) || back.Access != s.Access {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestBindingBlobGolden(t *testing.T) {
	got, err := wire.Marshal(bindingBlob{Version: 1, StoreID: seq(16, 0), KeyID: seq(16, 0x40), Public: goldenPoint})
	if err != nil {
		t.Fatal(err)
	}
	want := "a4" + "0101" + "0250" + hex.EncodeToString(seq(16, 0)) + "0350" + hex.EncodeToString(seq(16, 0x40)) +
		"045841" + hex.EncodeToString(goldenPoint)
	if hex.EncodeToString(got) != want {
		t.Fatalf("blob encoding changed:\n got %x\nwant %s", got, want)
	}
	if _, err := parseBindingBlob(got); err != nil {
		t.Fatal(err)
	}
}

func TestStateRejects(t *testing.T) {
	b := newBackend(t, newDevice(simulated.SecureEnclave()), withAuth)
	good, _ := parseState(provision(t, b))
	for _, tc := range []struct {
		desc string
		edit func(*state)
	}{
		{"version", func(s *state) { s.Version = 2 }},
		{"scheme", func(s *state) { s.Scheme = 3 }},
		{"store id", func(s *state) { s.StoreID = s.StoreID[:8] }},
		{"level", func(s *state) { s.Level = "titanium" }},
		{"pub without ECIES", func(s *state) { s.Scheme = schemeAES }},
		{"pub off curve", func(s *state) { s.StorePub = append(bytes.Clone(s.StorePub[:64]), s.StorePub[64]^1) }},
		{"salt", func(s *state) { s.Salt = nil }},
		{"huge memory", func(s *state) { s.MemoryKiB = 1 << 30 }},
		{"huge time", func(s *state) { s.Time = 1000 }},
		{"no threads", func(s *state) { s.Threads = 0 }},
		{"auth kinds", func(s *state) { s.Access.Auth = 8 }},
		{"validity", func(s *state) { s.Access.ValiditySecs = -1 }},
		{"check", func(s *state) { s.Check = s.Check[:10] }},
	} {
		s := *good
		s.Access = good.Access
		tc.edit(&s)
		enc, err := wire.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseState(enc); !errors.Is(err, backend.ErrState) {
			t.Errorf("%s: err = %v, want ErrState", tc.desc, err)
		}
		if _, err := b.Open(bg, enc, secret); err == nil {
			t.Errorf("%s: opened", tc.desc)
		}
	}
}

func FuzzParseState(f *testing.F) {
	b := newBackend(f, newDevice(simulated.SecureEnclave()), withAuth)
	f.Add(provision(f, b))
	f.Add([]byte{0xa0})
	testkit.FuzzCanonical(f, "state", parseState)
}

func FuzzParseBindingBlob(f *testing.F) {
	blob, _ := wire.Marshal(bindingBlob{Version: 1, StoreID: seq(16, 0), KeyID: seq(16, 0x40), Public: goldenPoint})
	f.Add(blob)
	testkit.FuzzCanonical(f, "binding key blob", parseBindingBlob)
}

// Unseal of arbitrary input never panics and never succeeds.
func FuzzUnseal(f *testing.F) {
	for _, p := range []simulated.Profile{simulated.SecureEnclave(), simulated.StrongBox(0)} {
		b := newBackend(f, newDevice(p), withAuth)
		sealed, err := open(f, b, provision(f, b)).Seal(bg, "l", []byte("k"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
	}
	b := newBackend(f, newDevice(simulated.StrongBox(0)), withAuth)
	s := open(f, b, provision(f, b))
	f.Fuzz(func(t *testing.T, in []byte) {
		if pt, err := s.Unseal(bg, "l", in); err == nil {
			t.Fatalf("junk unsealed to %x", pt)
		}
	})
}
