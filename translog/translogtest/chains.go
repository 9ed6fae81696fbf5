package translogtest

import (
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
)

// Chain is a test account's chain: real, verified chain links, so the
// log's map (translog.LinkEntry) reads them as an integrator would.
type Chain struct {
	ID     chain.AccountID
	Links  []*chain.Link
	state  *chain.State
	states []*chain.State // after each link
	dev    chain.DeviceID
	key    *hybrid.PrivateKey
	label  string
	t0     time.Time
}

// NewChain returns the genesis of an account named label, with keys
// derived from the label.
func NewChain(t testing.TB, label string) *Chain {
	t.Helper()
	seed := func(what string) []byte {
		a := sha256.Sum256([]byte("translogtest/" + label + "/" + what + "/0"))
		b := sha256.Sum256([]byte("translogtest/" + label + "/" + what + "/1"))
		return append(a[:], b[:hybrid.SeedSize-len(a)]...)
	}
	k, err := hybrid.NewPrivateKey(seed("device"))
	if err != nil {
		t.Fatal(err)
	}
	rk, err := hybrid.NewPrivateKey(seed("recovery"))
	if err != nil {
		t.Fatal(err)
	}
	gk, err := hpke.MLKEM768X25519().DeriveKeyPair(seed("kem"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Chain{key: k, label: label, t0: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	copy(c.dev[:], seed("id"))
	d, err := chain.NewGenesis(c.t0, &chain.Genesis{
		Device:   chain.Device{ID: c.dev, Name: label, Identity: k.Public(), KEM: gk.PublicKey().Bytes(), Level: chain.LevelSoftware},
		Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sign(chain.RoleSubject, k); err != nil {
		t.Fatal(err)
	}
	if err := d.Sign(chain.RoleNewRecovery, rk); err != nil {
		t.Fatal(err)
	}
	c.add(t, d)
	c.ID = chain.AccountID(c.Links[0].Hash())
	return c
}

// kem returns a new random KEM public key.
func kem(t testing.TB) []byte {
	k, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// Next appends one link (the device rotates its KEM key) and returns it.
func (c *Chain) Next(t testing.TB) *chain.Link {
	t.Helper()
	d, err := chain.NewDraft(c.state, c.t0, &chain.RotateKeys{ID: c.dev, KEM: kem(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SignDevice(c.dev, c.key); err != nil {
		t.Fatal(err)
	}
	return c.add(t, d)
}

func (c *Chain) add(t testing.TB, d *chain.Draft) *chain.Link {
	l, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	s, err := chain.Apply(c.state, l, c.t0)
	if err != nil {
		t.Fatalf("chain %s link %d: %v", c.label, len(c.Links), err)
	}
	c.state = s
	c.states = append(c.states, s)
	c.Links = append(c.Links, l)
	return l
}

// ForkAt returns a copy of the chain up to link seq: links appended to
// it (each with a new random KEM key) differ from the original's at the
// same sequence numbers.
func (c *Chain) ForkAt(seq uint64) *Chain {
	f := *c
	f.Links = append([]*chain.Link(nil), c.Links[:seq+1]...)
	f.states = append([]*chain.State(nil), c.states[:seq+1]...)
	f.state = f.states[seq]
	return &f
}

// Head returns the chain's head.
func (c *Chain) Head() chain.Head {
	l := c.Links[len(c.Links)-1]
	return chain.Head{Seq: l.Seq(), Hash: l.Hash()}
}

// String names the chain.
func (c *Chain) String() string { return fmt.Sprintf("%s (%s)", c.label, c.ID) }

// Links returns the links of accounts chains of perAccount links each
// (a genesis, then KEM rotations), account after account.
func Links(t testing.TB, prefix string, accounts, perAccount int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range accounts {
		c := NewChain(t, fmt.Sprintf("%s%d", prefix, i))
		for range perAccount - 1 {
			c.Next(t)
		}
		for _, l := range c.Links {
			out = append(out, l.Bytes())
		}
	}
	return out
}

var links4096 struct {
	sync.Mutex
	links [][]byte
}

// Links4096 returns 4096 real chain links of 1024 accounts (a genesis and
// three KEM rotations each), built once per process: the benchmarks'
// batch of one integration.
func Links4096(t testing.TB) [][]byte {
	links4096.Lock()
	defer links4096.Unlock()
	if links4096.links == nil {
		links4096.links = Links(t, "bench", 1024, 4)
	}
	return links4096.links
}
