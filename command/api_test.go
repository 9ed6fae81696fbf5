package command

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/internal/testkit"
)

func TestInfoHealthMetrics(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MinRecoveryDelay = time.Hour })
	r := e.want(e.do("GET", "/v1/info", "", nil), 200, "")
	if r.m["version"] != float64(1) || r.m["min_recovery_delay_seconds"] != float64(3600) || r.m["enrollment_ttl_seconds"] != float64(900) ||
		r.m["token_ttl_seconds"] != float64(600) || len(r.str("server_id")) != 32 {
		t.Fatalf("info: %s", r.body)
	}
	r = e.want(e.do("GET", "/healthz", "", nil), 200, "")
	if r.str("status") != "ok" || r.m["schema_version"] != float64(store.SchemaVersion) {
		t.Fatalf("healthz: %s", r.body)
	}
	e.want(e.do("GET", "/v1/nope", "", nil), 404, "not_found")
	r = e.want(e.do("GET", "/metrics", "", nil), 200, "")
	text := string(r.body)
	for _, want := range []string{
		`enigm_command_requests_total{route="GET /v1/info",method="GET",code="200"} 1`,
		`enigm_command_requests_total{route="other",method="GET",code="404"} 1`,
		`enigm_command_request_duration_seconds_bucket{route="GET /healthz",le="+Inf"} 1`,
		"# TYPE enigm_command_request_duration_seconds histogram",
		"enigm_command_chain_integrity_failures_total 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("metrics content type %q", ct)
	}
}

func TestCreateAccountAndRead(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MinRecoveryDelay = time.Hour })
	a, A := e.alice()
	if a.id != a.st.Account().String() {
		t.Fatalf("account id %s, chain says %s", a.id, a.st.Account())
	}
	r := e.want(e.do("GET", "/v1/names/alice", "", nil), 200, "")
	if r.str("account_id") != a.id {
		t.Fatalf("name lookup: %s", r.body)
	}
	e.want(e.do("GET", "/v1/names/nobody", "", nil), 404, "not_found")
	e.want(e.do("GET", "/v1/names/Bad%20Name", "", nil), 400, "bad_request")
	devs := a.devices()
	if d := devs[A.id.String()]; d.State != "active" || d.ApprovedBy != "genesis" || d.Protection != "software" || d.AddedSeq != 0 || !d.AddedAt.Equal(t0) || d.Name != "device alice/A" {
		t.Fatalf("first device: %+v", d)
	}
	// Name taken; the same genesis again under another name.
	_, r = e.tryAccount("alice", newDev("alice/other"), chain.DefaultPolicy(), nil, "")
	e.want(r, http.StatusConflict, "name_taken")
	// The server minimum recovery delay.
	short := chain.DefaultPolicy()
	short.RecoveryDelay = time.Minute
	_, r = e.tryAccount("bob", newDev("bob/A"), short, nil, "")
	e.want(r, http.StatusUnprocessableEntity, "policy_rejected")
	// A managed genesis needs an invite.
	_, r = e.tryAccount("carol", newDev("carol/A"), chain.DefaultPolicy(), &chain.Org{ID: "x", AdminKey: testKey("org").Public()}, "")
	e.want(r, http.StatusUnprocessableEntity, "policy_rejected")
	// chain after=SEQ; unknown account; malformed id.
	r = e.want(e.do("GET", "/v1/accounts/"+a.id+"/chain?after=0", "", nil), 200, "")
	if links := r.m["links"].([]any); len(links) != 0 {
		t.Fatalf("links after the head: %d", len(links))
	}
	e.want(e.do("GET", "/v1/accounts/"+strings.Repeat("ab", 32)+"/chain", "", nil), 404, "not_found")
	e.want(e.do("GET", "/v1/accounts/ABC/chain", "", nil), 400, "bad_request")
	e.want(e.do("GET", "/v1/accounts/"+a.id+"/chain?after=x", "", nil), 400, "bad_request")
}

func TestCreateAccountRejectsBadGenesis(t *testing.T) {
	e := newEnv(t)
	A := newDev("dave/A")
	recov := testKey("recovery:dave")
	g := &chain.Genesis{Device: A.device(), Recovery: recov.Public(), Policy: chain.DefaultPolicy()}
	d, _ := chain.NewGenesis(t0, g)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, A.key()))
	// No recovery key proof of possession: the chain refuses it.
	l := link(t, d)
	r := e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "dave", "genesis": enc64(l.Bytes())}), 422, "chain_rejected")
	if r.chainError() != "missing_signature" || r.m["chain_error"] != "missing_signature" {
		t.Fatalf("chain_error: %s", r.body)
	}
	// A signature by the wrong key.
	d, _ = chain.NewGenesis(t0, g)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, testKey("someone else")))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, recov))
	r = e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "dave", "genesis": enc64(link(t, d).Bytes())}), 422, "chain_rejected")
	if r.chainError() != "bad_signature" {
		t.Fatalf("chain_error: %s", r.body)
	}
	// Stale: a genesis dated long before the server's clock.
	e.clock.Add(time.Hour)
	d, _ = chain.NewGenesis(t0, g)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, A.key()))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, recov))
	r = e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "dave", "genesis": enc64(link(t, d).Bytes())}), 422, "chain_rejected")
	if r.chainError() != "stale" {
		t.Fatalf("chain_error: %s", r.body)
	}
	// Garbage, a non-genesis link, bad names.
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "dave", "genesis": enc64([]byte{0xa1, 0x01})}), 400, "bad_request")
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "dave", "genesis": "%%%"}), 400, "bad_request")
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "Dave", "genesis": enc64(l.Bytes())}), 400, "bad_request")
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": strings.Repeat("a", 65), "genesis": enc64(l.Bytes())}), 400, "bad_request")
	a := e.newAccount("erin", newDev("erin/A"), chain.DefaultPolicy())
	rot := a.rotateKEMLink(newDev("erin/A"), 1)
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"name": "frank", "genesis": enc64(rot.Bytes())}), 400, "bad_request")
	// Nothing of dave was stored.
	e.want(e.do("GET", "/v1/names/dave", "", nil), 404, "not_found")
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	a, A, B := e.aliceAB()
	tok := a.login(A)
	e.want(e.do("GET", "/v1/messages", tok, nil), 200, "")

	// A replayed challenge is refused; so is a challenge answered by the
	// wrong key, or by another device, or too late.
	r := e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": A.id.String()}), 200, "")
	ch := r.str("challenge")
	cb, _ := b64.DecodeString(ch)
	acct, _ := accountID("", a.id)
	sig, _ := A.key().Sign(AuthContext, AuthMessage(acct, A.id, cb))
	req := map[string]string{"account_id": a.id, "device_id": A.id.String(), "challenge": ch, "signature": enc64(sig.Bytes())}
	e.want(e.do("POST", "/v1/auth/token", "", req), 200, "")
	e.want(e.do("POST", "/v1/auth/token", "", req), 401, "unauthorized")

	r = e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": A.id.String()}), 200, "")
	cb, _ = b64.DecodeString(r.str("challenge"))
	bad, _ := B.key().Sign(AuthContext, AuthMessage(acct, A.id, cb))
	e.want(e.do("POST", "/v1/auth/token", "", map[string]string{"account_id": a.id, "device_id": A.id.String(), "challenge": r.str("challenge"), "signature": enc64(bad.Bytes())}), 401, "unauthorized")

	r = e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": A.id.String()}), 200, "")
	cb, _ = b64.DecodeString(r.str("challenge"))
	sigB, _ := B.key().Sign(AuthContext, AuthMessage(acct, B.id, cb))
	e.want(e.do("POST", "/v1/auth/token", "", map[string]string{"account_id": a.id, "device_id": B.id.String(), "challenge": r.str("challenge"), "signature": enc64(sigB.Bytes())}), 401, "unauthorized")

	r = e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": A.id.String()}), 200, "")
	cb, _ = b64.DecodeString(r.str("challenge"))
	sig, _ = A.key().Sign(AuthContext, AuthMessage(acct, A.id, cb))
	e.clock.Add(61 * time.Second)
	e.want(e.do("POST", "/v1/auth/token", "", map[string]string{"account_id": a.id, "device_id": A.id.String(), "challenge": r.str("challenge"), "signature": enc64(sig.Bytes())}), 401, "unauthorized")

	// Tokens expire; unknown, missing and malformed tokens are refused.
	e.clock.Add(10 * time.Minute)
	e.want(e.do("GET", "/v1/messages", tok, nil), 401, "unauthorized")
	e.want(e.do("GET", "/v1/messages", "edt_nonsense", nil), 401, "unauthorized")
	e.want(e.do("GET", "/v1/messages", "", nil), 401, "unauthorized")
	e.want(e.do("GET", "/v1/messages", "eat_admin-token-is-not-a-device-token", nil), 401, "unauthorized")

	// Unknown devices and accounts.
	e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": newDev("x").id.String()}), 404, "not_found")
	e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": strings.Repeat("0", 64), "device_id": A.id.String()}), 404, "not_found")

	// Revocation: B's live token stops working at once, and B gets no new one.
	delete(a.tokens, A.id)
	tokB := a.login(B)
	e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	a.sync()
	e.want(e.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized") // its tokens were deleted with the revocation
	_, r = a.tryLogin(B)
	e.want(r, 403, "device_revoked")
}

// A token whose device is revoked by another instance (same database)
// gets 403 device_revoked: every request re-checks the verified state.
func TestRevokedDeviceRecheckedEveryRequest(t *testing.T) {
	e := newEnv(t)
	a, A, B := e.aliceAB()
	tokB := a.login(B)
	e.want(e.do("GET", "/v1/messages", tokB, nil), 200, "")
	// Revoke B through a second instance over the same database, and put
	// B's token back as if the deletion had not happened yet.
	other, err := New(Config{DataDir: e.cfg.DataDir, Store: e.srv.store, KeystorePassphrase: []byte("x"), Clock: e.clock.Now, Logger: discard, JanitorInterval: -1, RateLimits: &RateLimits{Disabled: true}})
	testkit.NoErr(t, err)
	defer other.Close()
	e2 := &env{t: t, srv: other, clock: e.clock, cfg: e.cfg}
	a2 := &tacct{e: e2, id: a.id, tokens: map[chain.DeviceID]string{}}
	a2.sync()
	e2.want(a2.post(A, a2.revokeLink(A, B)), http.StatusCreated, "")
	h := secretHash([]byte(tokB))
	testkit.NoErr(t, e.srv.store.PutToken(t.Context(), storeSecret(h, a.id, B.id.String(), e.clock.Now().Add(time.Minute))))
	e.want(e.do("GET", "/v1/messages", tokB, nil), 403, "device_revoked")
	e.want(e.do("POST", "/v1/messages", tokB, map[string]any{"kind": "message", "envelopes": []any{}}), 403, "device_revoked")
}
