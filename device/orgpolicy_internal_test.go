package device

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
)

// TestAccountLogPolicy: the account's witness policy binds the links of
// the device's own account only, is parsed once, and one that does not
// parse (the chain checks its form only) stops the device rather than
// being ignored: ignoring it would let whoever signs set_policy strip it
// with a typo.
func TestAccountLogPolicy(t *testing.T) {
	db, err := openAgentDB(t.TempDir())
	testkit.NoErr(t, err)
	t.Cleanup(func() { db.close() })
	own, other := chain.AccountID{1}, chain.AccountID{2}
	a := &Agent{db: db, cfg: &config{Account: hex.EncodeToString(own[:])}}
	w := a.logStore()
	good := "witness W witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o\nquorum W\n"
	p, ok, err := w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: good, WitnessMaxAge: 10 * time.Minute})
	if err != nil || !ok || !p.Org.RequiresWitnesses() || p.Org.Quorum != "W" || p.OrgMaxAge != 10*time.Minute || p.Witnesses != nil {
		t.Fatalf("own account: %+v %v %v", p, ok, err)
	}
	first := p.Org
	if p, _, _ = w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: good}); p.Org != first || p.OrgMaxAge != 0 {
		t.Fatalf("the same policy parsed again, or its maximum age kept: %+v", p)
	}
	if p, ok, err := w.AccountLogPolicy(own, chain.Policy{}); err != nil || !ok || p.Org != nil {
		t.Fatalf("own account without a witness policy: %+v %v %v", p, ok, err)
	}
	if _, ok, err := w.AccountLogPolicy(other, chain.Policy{WitnessPolicy: good}); ok || err != nil {
		t.Fatalf("a correspondent's policy bound this device: %v %v", ok, err)
	}
	_, ok, err = w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: "witness W not-a-key\nquorum W\n"})
	if ok || !errors.Is(err, translog.ErrPolicy) || !strings.Contains(err.Error(), "syncs nothing under it") {
		t.Fatalf("a witness policy that does not parse: %v %v", ok, err)
	}
	// Without links stored, logPolicy is the configured policy alone.
	if p, err := a.logPolicy(); err != nil || p.Org != nil || p.RequiresWitnesses() {
		t.Fatalf("no chain stored: %+v %v", p, err)
	}
}
