package command

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
)

// Trusted time for links (docs/design/chain.md §3.1): Command refuses links
// dated after its clock beyond MaxLinkSkew, recovery requests dated outside
// MaxLinkSkew of its clock in either direction, and counts a recovery's
// waiting period from when it accepted the request.

// tmDraftAt starts a link at the client's verified head, dated at.
func tmDraftAt(a *tacct, at time.Time, b chain.Body) *chain.Draft {
	a.e.t.Helper()
	d, err := chain.NewDraft(a.st, at, b)
	testkit.NoErr(a.e.t, err)
	return d
}

func tmRotateAt(a *tacct, d *tdev, at time.Time, label string) *chain.Link {
	dr := tmDraftAt(a, at, &chain.RotateKeys{ID: d.id, KEM: testKEM(d.label + "/" + label)})
	testkit.NoErr(a.e.t, dr.SignDevice(d.id, d.key()))
	return link(a.e.t, dr)
}

func tmRevokeAt(a *tacct, by, target *tdev, at time.Time) *chain.Link {
	dr := tmDraftAt(a, at, &chain.RevokeDevice{ID: target.id, Reason: chain.ReasonCompromised})
	testkit.NoErr(a.e.t, dr.SignDevice(by.id, by.key()))
	return link(a.e.t, dr)
}

func tmRequestAt(a *tacct, dev *tdev, at time.Time) (*chain.Link, *resp) {
	d := tmDraftAt(a, at, &chain.RecoveryRequest{Device: dev.device()})
	testkit.NoErr(a.e.t, d.Sign(chain.RoleRecovery, a.recov))
	testkit.NoErr(a.e.t, d.Sign(chain.RoleSubject, dev.key()))
	l := link(a.e.t, d)
	return l, a.e.do("POST", "/v1/accounts/"+a.id+"/recoveries", "", map[string]string{"link": enc64(l.Bytes())})
}

func tmWantChainErr(t *testing.T, r *resp, want chain.Code) {
	t.Helper()
	if r.code != http.StatusUnprocessableEntity || r.errCode() != "chain_rejected" || r.chainError() != want.String() {
		t.Fatalf("got %d %s, want 422 chain_rejected %s", r.code, r.body, want)
	}
}

// A stolen, still active device dates a rotate_keys minutes ahead (within
// the chain's 5-minute skew) so that the owner's revocation, dated by an
// honest clock, would be older than the head: Command refuses the link, and
// the owner's revocation goes through.
func TestStolenDeviceFutureDatedLinkRefused(t *testing.T) {
	e := newEnv(t)
	a, A, B := e.twoDevices("tm-future")
	a.sync()
	now := e.clock.Now()
	tmWantChainErr(t, a.post(B, tmRotateAt(a, B, now.Add(4*time.Minute), "ahead4m")), chain.ErrFutureTimestamp)
	tmWantChainErr(t, a.post(B, tmRotateAt(a, B, now.Add(DefaultMaxLinkSkew+time.Second), "ahead31s")), chain.ErrFutureTimestamp)
	a.sync()
	if a.st.Head().Seq != 1 {
		t.Fatalf("a future-dated link was appended: head seq %d", a.st.Head().Seq)
	}
	// The owner's revocation, dated by its own clock, goes through.
	e.want(a.post(A, tmRevokeAt(a, A, B, now)), http.StatusCreated, "")
	a.sync()
	if a.st.IsActive(B.id) {
		t.Fatal("B is still active")
	}
}

// A link dated ahead within MaxLinkSkew is accepted; a revocation dated at
// max(now, head time), as devices date links, is accepted after it.
func TestRevocationAfterHeadDatedAheadWithinSkew(t *testing.T) {
	e := newEnv(t)
	a, A, B := e.twoDevices("tm-skew")
	a.sync()
	now := e.clock.Now()
	e.want(a.post(B, tmRotateAt(a, B, now.Add(DefaultMaxLinkSkew), "ahead30s")), http.StatusCreated, "")
	a.sync()
	tmWantChainErr(t, a.post(A, tmRevokeAt(a, A, B, now)), chain.ErrTimeRegression)
	e.want(a.post(A, tmRevokeAt(a, A, B, a.st.Time())), http.StatusCreated, "")
}

// A genesis dated ahead of Command's clock beyond the skew is refused too.
func TestFutureDatedGenesisRefused(t *testing.T) {
	e := newEnv(t)
	A := newDev("tm3/A")
	recov := testKey("recovery:tm3")
	d, err := chain.NewGenesis(e.clock.Now().Add(time.Minute), &chain.Genesis{Device: A.device(), Recovery: recov.Public(), Policy: chain.DefaultPolicy()})
	testkit.NoErr(t, err)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, A.key()))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, recov))
	tmWantChainErr(t, e.do("POST", "/v1/accounts", "", map[string]any{"name": "tm3", "genesis": enc64(link(t, d).Bytes())}), chain.ErrFutureTimestamp)
}

// A holder of the recovery code dates the request back (within the link
// age bound) or ahead: both are refused; within the skew it is accepted and
// the waiting period counts from Command's clock.
func TestRecoveryRequestTimeWithinSkew(t *testing.T) {
	e := newEnv(t)
	A, R := newDev("tm4/A"), newDev("tm4/R")
	a := e.newAccount("tm-recovery", A, chain.DefaultPolicy())
	e.clock.Add(9 * time.Minute)
	now := e.clock.Now()
	_, r := tmRequestAt(a, R, now.Add(-8*time.Minute))
	tmWantChainErr(t, r, chain.ErrStale)
	_, r = tmRequestAt(a, R, now.Add(-DefaultMaxLinkSkew-time.Second))
	tmWantChainErr(t, r, chain.ErrStale)
	_, r = tmRequestAt(a, R, now.Add(DefaultMaxLinkSkew+time.Second))
	tmWantChainErr(t, r, chain.ErrFutureTimestamp)
	if a.sync(); a.st.Head().Seq != 0 {
		t.Fatal("a refused request was appended")
	}
	_, r = tmRequestAt(a, R, now.Add(-20*time.Second))
	e.want(r, http.StatusCreated, "")
	if got, want := r.str("not_before"), rfc3339(now.Add(chain.DefaultRecoveryDelay)); got != want {
		t.Fatalf("not_before = %s, want %s (accepted time + delay, not link time + delay)", got, want)
	}
	if got := r.str("requested_at"); got != rfc3339(now) {
		t.Fatalf("requested_at = %s, want the accepted time %s", got, rfc3339(now))
	}
}

// recover is refused before accepted+delay even when the link times say
// the waiting period is over (the request dated back within the skew, the
// recover link dated now).
func TestRecoverBeforeAcceptedPlusDelayRefused(t *testing.T) {
	e := newEnv(t)
	A, R := newDev("tm5/A"), newDev("tm5/R")
	a := e.newAccount("tm-recover", A, chain.DefaultPolicy())
	e.clock.Add(time.Minute)
	accepted := e.clock.Now()
	req, r := tmRequestAt(a, R, accepted.Add(-25*time.Second))
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.clock.Add(chain.DefaultRecoveryDelay - 10*time.Second)
	// On link times 24h15s have passed: the chain alone would accept it.
	l := a.recoverLink(R, req.Hash())
	if _, err := chain.Apply(a.st, l, e.clock.Now()); err != nil {
		t.Fatalf("the chain refuses the recover link: %v", err)
	}
	r = e.do("POST", "/v1/recoveries/"+req.Hash().String()+"/complete", "", map[string]string{"link": enc64(l.Bytes())})
	e.want(r, http.StatusConflict, "too_early")
	if !strings.Contains(string(r.body), rfc3339(accepted.Add(chain.DefaultRecoveryDelay))) {
		t.Fatalf("too_early does not name the end of the waiting period: %s", r.body)
	}
	e.clock.Add(10 * time.Second)
	e.want(a.completeRecovery(R, req.Hash()), http.StatusCreated, "")
}

// Zero-delay recovery leaves no time for a veto: refused by default (for
// accounts and organisation policies), accepted only on a development
// server, which says so in its log.
func TestMinRecoveryDelayDefault(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DevAllowZeroRecoveryDelay = false })
	r := e.want(e.do("GET", "/v1/info", "", nil), 200, "")
	if r.m["min_recovery_delay_seconds"] != float64(DefaultMinRecoveryDelay/time.Second) {
		t.Fatalf("info: %s", r.body)
	}
	for i, d := range []time.Duration{0, time.Second, DefaultMinRecoveryDelay - time.Second} {
		_, r := e.tryAccount("tm-zero"+string(rune('a'+i)), newDev("tm6/"+d.String()), chain.Policy{RecoveryDelay: d}, nil, "")
		e.want(r, http.StatusUnprocessableEntity, "policy_rejected")
	}
	e.newAccount("tm-onehour", newDev("tm6/A"), chain.Policy{RecoveryDelay: DefaultMinRecoveryDelay})
	o := e.newOrg("TimeOrg", Policy{RecoveryDelaySeconds: int64(DefaultMinRecoveryDelay / time.Second)})
	m := e.newManaged(o, "tm-managed", newDev("tm6/M"))
	e.want(e.do("POST", "/v1/admin/accounts/"+m.id+"/policy", o.AdminToken, Policy{RecoveryDelaySeconds: 0}), http.StatusUnprocessableEntity, "policy_rejected")
	if strings.Contains(e.logText(), "DEVELOPMENT SERVER") {
		t.Fatal("a production server logs the development warning")
	}

	dev := newEnv(t, func(c *Config) { c.DevAllowZeroRecoveryDelay = true })
	dev.newAccount("tm-dev", newDev("tm6/D"), chain.Policy{})
	if !strings.Contains(dev.logText(), "DEVELOPMENT SERVER") {
		t.Fatalf("the development server does not warn: %s", dev.logText())
	}
	// An explicit minimum still holds with the development flag.
	strict := newEnv(t, func(c *Config) { c.DevAllowZeroRecoveryDelay, c.MinRecoveryDelay = true, time.Minute })
	_, r = strict.tryAccount("tm-strict", newDev("tm6/S"), chain.Policy{}, nil, "")
	strict.want(r, http.StatusUnprocessableEntity, "policy_rejected")
}
