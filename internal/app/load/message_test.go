package load

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// The load tool's message form is one envelope.Split takes, naming the
// devices it was made for in order, from the sender it names.
func TestMessageFormSplits(t *testing.T) {
	s, b, c := testkit.Must(newDevice("S")), testkit.Must(newDevice("B")), testkit.Must(newDevice("C"))
	st := testkit.Must(chain.Apply(nil, testkit.Must(genesisFor(t, b)), time.Now()))
	sender := &account{id: strings.Repeat("ab", 32)}
	form := testkit.Must(messageForm(sender, s, st, []*device{b, c}))
	dels, err := envelope.Split(form)
	if err != nil {
		t.Fatal(err)
	}
	if len(dels) != 2 || dels[0].Device != b.rec.ID || dels[1].Device != c.rec.ID || dels[0].Account != st.Account() {
		t.Fatalf("split into %+v", dels)
	}
	p := testkit.Must(envelope.Parse(dels[1].Bytes))
	if hex.EncodeToString(p.FromAccount[:]) != sender.id || p.FromDevice != s.rec.ID || p.Kind != envelope.KindMessage || p.Heads[st.Account()] != st.Head() {
		t.Fatalf("parsed %+v", p)
	}
}

// genesisFor is a genesis link with first as its device.
func genesisFor(t *testing.T, first *device) (*chain.Link, error) {
	t.Helper()
	rk := testkit.Must(hybrid.NewPrivateKey(make([]byte, hybrid.SeedSize)))
	d, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: first.rec, Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		return nil, err
	}
	testkit.NoErr(t, d.Sign(chain.RoleSubject, first.key))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, rk))
	return d.Link()
}
