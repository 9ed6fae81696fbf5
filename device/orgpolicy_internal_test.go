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
	if !w.BindsAccount(own) || w.BindsAccount(other) {
		t.Fatal("the policy of a correspondent's account binds this device, or its own does not")
	}
	p, err := w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: good, WitnessMaxAge: 10 * time.Minute})
	if err != nil || !p.Org.RequiresWitnesses() || p.Org.Quorum != "W" || p.OrgMaxAge != 10*time.Minute || p.Witnesses != nil {
		t.Fatalf("own account: %+v %v", p, err)
	}
	first := p.Org
	if p, _ = w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: good}); p.Org != first || p.OrgMaxAge != 0 {
		t.Fatalf("the same policy parsed again, or its maximum age kept: %+v", p)
	}
	if p, err := w.AccountLogPolicy(own, chain.Policy{}); err != nil || p.Org != nil {
		t.Fatalf("own account without a witness policy: %+v %v", p, err)
	}
	_, err = w.AccountLogPolicy(own, chain.Policy{WitnessPolicy: "witness W not-a-key\nquorum W\n"})
	if !errors.Is(err, translog.ErrPolicy) || !strings.Contains(err.Error(), "syncs nothing under it") {
		t.Fatalf("a witness policy that does not parse: %v", err)
	}
	// A device joining an account is bound by it before it is its own.
	j := &Agent{db: db, cfg: &config{}, joining: &other}
	if !j.logStore().BindsAccount(other) || j.logStore().BindsAccount(own) {
		t.Fatal("the account being joined")
	}
	// Without links stored, logPolicy is the configured policy alone.
	if p, err := a.logPolicy(); err != nil || p.Org != nil || p.RequiresWitnesses() {
		t.Fatalf("no chain stored: %+v %v", p, err)
	}
}
