package client

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type dev struct {
	rec chain.Device
	key *hybrid.PrivateKey
}

func newDev(t *testing.T, seed byte, name string) dev {
	k, err := hybrid.NewPrivateKey(bytes.Repeat([]byte{seed}, hybrid.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	kem, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var id chain.DeviceID
	id[0] = seed
	return dev{rec: chain.Device{ID: id, Name: name, Identity: k.Public(), KEM: kem.PublicKey().Bytes(), Level: chain.LevelSoftware}, key: k}
}

// testChain builds genesis A, then add B by A, then revoke B by A.
func testChain(t *testing.T, recoverySeed byte) (links []*chain.Link, states []*chain.State) {
	a, b := newDev(t, 1, "A"), newDev(t, 2, "B")
	rk, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{recoverySeed}, hybrid.SeedSize))
	d, err := chain.NewGenesis(t0, &chain.Genesis{Device: a.rec, Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	d.Sign(chain.RoleSubject, a.key)
	d.Sign(chain.RoleNewRecovery, rk)
	g, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	s, err := chain.Apply(nil, g, t0)
	if err != nil {
		t.Fatal(err)
	}
	links, states = append(links, g), append(states, s)
	var nonce [chain.NonceSize]byte
	ad, _ := chain.NewDraft(s, t0, &chain.AddDevice{Device: b.rec, Nonce: nonce, PairingHash: chain.PairingHash(nonce, "code")})
	ad.SignDevice(a.rec.ID, a.key)
	ad.Sign(chain.RoleSubject, b.key)
	l, err := ad.Link()
	if err != nil {
		t.Fatal(err)
	}
	if s, err = chain.Apply(s, l, t0); err != nil {
		t.Fatal(err)
	}
	links, states = append(links, l), append(states, s)
	rd, _ := chain.NewDraft(s, t0, &chain.RevokeDevice{ID: b.rec.ID})
	rd.SignDevice(a.rec.ID, a.key)
	if l, err = rd.Link(); err != nil {
		t.Fatal(err)
	}
	if s, err = chain.Apply(s, l, t0); err != nil {
		t.Fatal(err)
	}
	return append(links, l), append(states, s)
}

func raw(ls []*chain.Link) [][]byte {
	var out [][]byte
	for _, l := range ls {
		out = append(out, l.Bytes())
	}
	return out
}

func TestExtend(t *testing.T) {
	links, states := testChain(t, 9)
	other, otherStates := testChain(t, 8) // another account: different recovery key
	acct := states[0].Account()
	now := t0.Add(time.Minute)

	// From nothing to the full chain.
	s, err := Extend(acct, nil, View{Head: states[2].Head(), Links: raw(links)}, now)
	if err != nil || s.Head() != states[2].Head() {
		t.Fatalf("full chain: %v", err)
	}
	// Extension from a verified head.
	if _, err := Extend(acct, states[0], View{Head: states[2].Head(), Links: raw(links[1:])}, now); err != nil {
		t.Fatalf("extension: %v", err)
	}
	cases := []struct {
		desc  string
		state *chain.State
		view  View
		want  error
	}{
		{"rollback", states[2], View{Head: states[1].Head()}, ErrRollback},
		{"same seq, other hash", states[1], View{Head: chain.Head{Seq: 1, Hash: chain.Hash{1}}}, ErrFork},
		{"another account's genesis", nil, View{Head: otherStates[0].Head(), Links: raw(other[:1])}, ErrFork},
		{"another account's links", states[0], View{Head: otherStates[2].Head(), Links: raw(other[1:])}, ErrFork},
		{"gap", states[0], View{Head: states[2].Head(), Links: raw(links[2:])}, ErrFork},
		{"claims a head it did not send", states[0], View{Head: states[2].Head(), Links: raw(links[1:2])}, ErrFork},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if _, err := Extend(acct, c.state, c.view, now); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// A forged link (a ghost device signed by nobody the chain trusts) is
	// refused with the chain's own error.
	ghost := newDev(t, 7, "ghost")
	var nonce [chain.NonceSize]byte
	gd, _ := chain.NewDraft(states[2], t0, &chain.AddDevice{Device: ghost.rec, Nonce: nonce, PairingHash: chain.PairingHash(nonce, "x")})
	gd.Sign(chain.RoleSubject, ghost.key)
	gd.SignDevice(ghost.rec.ID, ghost.key)
	gl, err := gd.Link()
	if err != nil {
		t.Fatal(err)
	}
	forged := View{Head: chain.Head{Seq: 3, Hash: gl.Hash()}, Links: [][]byte{gl.Bytes()}}
	if _, err := Extend(acct, states[2], forged, now); err == nil || !errors.Is(err, chain.ErrSignerUnknown) {
		t.Fatalf("forged device: %v", err)
	}
}

type memStore map[chain.AccountID][][]byte

func (m memStore) Links(a chain.AccountID) ([][]byte, error) { return m[a], nil }
func (m memStore) Append(a chain.AccountID, l [][]byte) error {
	m[a] = append(m[a], l...)
	return nil
}

// A tampered local store is refused too.
func TestLoadRefusesTamperedStore(t *testing.T) {
	links, states := testChain(t, 9)
	acct := states[0].Account()
	st := memStore{acct: raw(links)}
	if _, err := Load(acct, st, t0); err != nil {
		t.Fatal(err)
	}
	bad := raw(links)
	bad[1] = bytes.Clone(bad[1])
	bad[1][len(bad[1])-5] ^= 1
	if _, err := Load(acct, memStore{acct: bad}, t0); err == nil {
		t.Fatal("a tampered stored chain loaded")
	}
}
