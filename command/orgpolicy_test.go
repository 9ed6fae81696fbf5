package command

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const testWitnessPolicy = "witness W witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o\nquorum W\n"

// TestWitnessPolicyBeforeSigning: Command parses an organisation's witness
// policy (translog.ParsePolicy) before it signs anything with the
// organisation key: one that does not parse is refused at org create and
// at set-policy, and the chain stays as it was; a valid one goes into the
// set_policy link and the account's policy, and "" removes it.
func TestWitnessPolicyBeforeSigning(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.Store = e.srv.store
	_, err := CreateOrg(context.Background(), cfg, OrgSpec{Name: "BadWitness", Policy: Policy{RecoveryDelaySeconds: 3600, WitnessPolicy: "witness W nokey\nquorum W\n"}})
	if err == nil || !strings.Contains(err.Error(), "bad witness policy: line 1") {
		t.Fatalf("org create with a witness policy that does not parse: %v", err)
	}
	o := e.newOrg("WitnessOrg", Policy{RecoveryDelaySeconds: 3600})
	m := e.newManaged(o, "wp-managed", newDev("wp/M"))
	path := "/v1/admin/accounts/" + m.id + "/policy"
	r := e.want(e.do("POST", path, o.AdminToken, `{"witness_policy": "witness W nokey\nquorum W\n"}`), http.StatusBadRequest, "")
	if !strings.Contains(string(r.body), "bad witness policy: line 1") {
		t.Fatalf("the refusal does not name the line: %s", r.body)
	}
	e.want(e.do("POST", path, o.AdminToken, `{"witness_max_age_seconds": 60}`), http.StatusBadRequest, "")
	m.sync()
	if m.st.Head().Seq != 0 {
		t.Fatalf("a refused policy was signed: head %v", m.st.Head())
	}
	r = e.want(e.do("POST", path, o.AdminToken, Policy{RecoveryDelaySeconds: 3600, WitnessPolicy: testWitnessPolicy, WitnessMaxAgeSeconds: 600}), http.StatusCreated, "")
	if p := r.m["policy"].(map[string]any); p["witness_policy"] != testWitnessPolicy || p["witness_max_age_seconds"] != float64(600) {
		t.Fatalf("the policy set: %s", r.body)
	}
	m.sync()
	if p := m.st.Policy(); m.st.Head().Seq != 1 || p.WitnessPolicy != testWitnessPolicy || p.WitnessMaxAge.Seconds() != 600 {
		t.Fatalf("the chain's policy: head %v, %+v", m.st.Head(), p)
	}
	r = e.want(e.do("POST", path, o.AdminToken, `{"witness_policy": ""}`), http.StatusCreated, "")
	if p := r.m["policy"].(map[string]any); p["witness_policy"] != nil || p["witness_max_age_seconds"] != nil {
		t.Fatalf("the policy removed: %s", r.body)
	}
}
