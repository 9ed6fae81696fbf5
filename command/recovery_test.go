package command

import (
	"net/http"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// recoveryRequest builds the recovery_request for dev at the client head.
func (a *tacct) recoveryRequest(dev *tdev) *chain.Link {
	d := a.draft(&chain.RecoveryRequest{Device: dev.device()})
	testkit.NoErr(a.e.t, d.Sign(chain.RoleRecovery, a.recov))
	testkit.NoErr(a.e.t, d.Sign(chain.RoleSubject, dev.key()))
	return link(a.e.t, d)
}

func (a *tacct) recoverLink(dev *tdev, req chain.Hash) *chain.Link {
	d := a.draft(&chain.Recover{Request: req})
	testkit.NoErr(a.e.t, d.Sign(chain.RoleSubject, dev.key()))
	return link(a.e.t, d)
}

func (a *tacct) requestRecovery(dev *tdev) (*chain.Link, *resp) {
	l := a.recoveryRequest(dev)
	return l, a.e.do("POST", "/v1/accounts/"+a.id+"/recoveries", "", map[string]string{"link": enc64(l.Bytes())})
}

func (a *tacct) completeRecovery(dev *tdev, req chain.Hash) *resp {
	l := a.recoverLink(dev, req)
	return a.e.do("POST", "/v1/recoveries/"+req.String()+"/complete", "", map[string]string{"link": enc64(l.Bytes())})
}

func TestRecoveryWaitingPeriodAndVeto(t *testing.T) {
	storetest.Engines(t, testRecoveryWaitingPeriodAndVeto)
}

func testRecoveryWaitingPeriodAndVeto(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	A, C, D := newDev("alice/A"), newDev("alice/C"), newDev("alice/D")
	p := chain.DefaultPolicy() // 24 h
	a := e.newAccount("alice", A, p)

	req, r := a.requestRecovery(C)
	e.want(r, http.StatusCreated, "")
	if r.str("state") != "waiting" || r.str("recovery_id") != req.Hash().String() || r.str("not_before") != rfc3339(t0.Add(24*time.Hour)) || r.str("device_id") != C.id.String() {
		t.Fatalf("recovery: %s", r.body)
	}
	a.sync()
	// A second request while one is pending.
	_, r = a.requestRecovery(D)
	e.want(r, 422, "chain_rejected")
	if r.chainError() != "recovery_pending" {
		t.Fatal(r.body)
	}
	// Too early.
	e.clock.Add(time.Hour)
	e.want(a.completeRecovery(C, req.Hash()), 409, "too_early")
	// An active device vetoes.
	d := a.draft(&chain.RecoveryVeto{Request: req.Hash()})
	testkit.NoErr(t, d.SignDevice(A.id, A.key()))
	e.want(a.post(A, link(t, d)), http.StatusCreated, "")
	a.sync()
	r = e.want(e.do("GET", "/v1/recoveries/"+req.Hash().String(), "", nil), 200, "")
	if r.str("state") != "vetoed" {
		t.Fatalf("after the veto: %s", r.body)
	}
	e.clock.Add(24 * time.Hour)
	r = e.want(a.completeRecovery(C, req.Hash()), 422, "chain_rejected")
	if r.chainError() != "recovery_vetoed" {
		t.Fatal(r.body)
	}

	// A new request runs its waiting period and completes.
	req2, r := a.requestRecovery(D)
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.clock.Add(24*time.Hour + time.Second)
	r = e.want(e.do("GET", "/v1/recoveries/"+req2.Hash().String(), "", nil), 200, "")
	if r.str("state") != "ready" {
		t.Fatalf("after the waiting period: %s", r.body)
	}
	e.want(a.completeRecovery(D, req2.Hash()), http.StatusCreated, "")
	a.sync()
	if d := a.devices()[D.id.String()]; d.State != "active" || d.ApprovedBy != "recovery" {
		t.Fatalf("recovered device: %+v", d)
	}
	r = e.want(e.do("GET", "/v1/recoveries/"+req2.Hash().String(), "", nil), 200, "")
	if r.str("state") != "completed" {
		t.Fatal(r.body)
	}
	// The recovered device authenticates.
	a.login(D)
	e.want(e.do("GET", "/v1/recoveries/"+chain.Hash{}.String(), "", nil), 404, "not_found")
	e.want(e.do("GET", "/v1/recoveries/xyz", "", nil), 400, "bad_request")
}

func TestRecoveryAdminReview(t *testing.T) { storetest.Engines(t, testRecoveryAdminReview) }

func testRecoveryAdminReview(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	o := e.newOrg("Acme", Policy{RequireAdminReview: true, RecoveryDelaySeconds: 600})
	A, C, D := newDev("bob/A"), newDev("bob/C"), newDev("bob/D")
	a := e.newManaged(o, "bob", A)

	req, r := a.requestRecovery(C)
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.clock.Add(11 * time.Minute)
	r = e.want(a.completeRecovery(C, req.Hash()), http.StatusAccepted, "")
	if r.str("state") != "pending_review" {
		t.Fatalf("completion under review: %s", r.body)
	}
	// Held, not appended.
	if a.sync(); a.st.Head().Seq != 1 {
		t.Fatal("the recover link was appended before the review")
	}
	e.want(a.completeRecovery(C, req.Hash()), 409, "conflict")
	r = e.want(e.do("GET", "/v1/admin/recoveries", o.AdminToken, nil), 200, "")
	if l := r.m["recoveries"].([]any); len(l) != 1 || l[0].(map[string]any)["state"] != "pending_review" {
		t.Fatalf("admin recoveries: %s", r.body)
	}
	e.want(e.do("POST", "/v1/admin/recoveries/"+req.Hash().String()+"/review", o.AdminToken, map[string]any{}), 400, "bad_request")
	// The review may come later than the link age bound.
	e.clock.Add(time.Hour)
	r = e.want(e.do("POST", "/v1/admin/recoveries/"+req.Hash().String()+"/review", o.AdminToken, map[string]any{"approve": true}), 200, "")
	if r.str("state") != "completed" {
		t.Fatalf("review: %s", r.body)
	}
	a.sync()
	if rec, ok := a.st.Device(C.id); !ok || rec.Status != chain.StatusActive || !rec.ApprovedBy.Org {
		t.Fatal("C was not added with the organisation's counter-signature")
	}

	// A denied review: the recovery cannot be completed.
	req2, r := a.requestRecovery(D)
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.clock.Add(11 * time.Minute)
	e.want(a.completeRecovery(D, req2.Hash()), http.StatusAccepted, "")
	r = e.want(e.do("POST", "/v1/admin/recoveries/"+req2.Hash().String()+"/review", o.AdminToken, map[string]any{"approve": false, "reason": "not our employee"}), 200, "")
	if r.str("state") != "denied" || r.str("reason") != "not our employee" {
		t.Fatal(r.body)
	}
	e.want(a.completeRecovery(D, req2.Hash()), 403, "forbidden")
	e.want(e.do("POST", "/v1/admin/recoveries/"+req2.Hash().String()+"/review", o.AdminToken, map[string]any{"approve": true}), 409, "conflict")
	// Another organisation's admin cannot review it.
	other := e.newOrg("Other", Policy{})
	e.want(e.do("POST", "/v1/admin/recoveries/"+req2.Hash().String()+"/review", other.AdminToken, map[string]any{"approve": true}), 403, "forbidden")
}

// The held link no longer follows the head when the chain moved during the
// review: the recovery returns to waiting and is completed again.
func TestRecoveryReviewAfterHeadMoved(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("Acme", Policy{RequireAdminReview: true, RecoveryDelaySeconds: 0})
	A, C := newDev("carl/A"), newDev("carl/C")
	a := e.newManaged(o, "carl", A)
	req, r := a.requestRecovery(C)
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.want(a.completeRecovery(C, req.Hash()), http.StatusAccepted, "")
	e.want(a.post(A, a.rotateKEMLink(A, 1)), http.StatusCreated, "")
	a.sync()
	e.want(e.do("POST", "/v1/admin/recoveries/"+req.Hash().String()+"/review", o.AdminToken, map[string]any{"approve": true}), 409, "conflict")
	r = e.want(e.do("GET", "/v1/recoveries/"+req.Hash().String(), "", nil), 200, "")
	if r.str("state") != "ready" {
		t.Fatal(r.body)
	}
	e.want(a.completeRecovery(C, req.Hash()), http.StatusAccepted, "")
	e.want(e.do("POST", "/v1/admin/recoveries/"+req.Hash().String()+"/review", o.AdminToken, map[string]any{"approve": true}), 200, "")
}
