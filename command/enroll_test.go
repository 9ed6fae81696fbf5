package command

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

func TestEnrollmentStateMachine(t *testing.T) { storetest.Engines(t, testEnrollmentStateMachine) }

func testEnrollmentStateMachine(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	A, B := newDev("alice/A"), newDev("alice/B")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	en := a.requestAdd(B)
	if en.state() != "pending" {
		t.Fatalf("new request is %s", en.state())
	}
	// The approving device lists it, with the body the new device sent.
	r := e.want(e.do("GET", "/v1/accounts/"+a.id+"/enrollments", a.token(A), nil), 200, "")
	list := r.m["enrollments"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["request_id"] != en.rid || list[0].(map[string]any)["body"] != enc64(en.raw) ||
		list[0].(map[string]any)["device_id"] != B.id.String() || list[0].(map[string]any)["expires_at"] != rfc3339(t0.Add(15*time.Minute)) {
		t.Fatalf("enrollments: %s", r.body)
	}
	// Completing before any approval.
	e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/complete", "", map[string]string{"link": enc64(en.buildLink().Bytes())}), 409, "conflict")
	r = e.want(en.approve(A), 200, "")
	if r.str("state") != "approved" || r.m["head"].(map[string]any)["seq"] != float64(0) {
		t.Fatalf("approved: %s", r.body)
	}
	// A second approval (by the same or another device) loses.
	e.want(en.approve(A), 409, "conflict")
	e.want(en.complete(), http.StatusCreated, "")
	if en.state() != "completed" {
		t.Fatalf("state %s", en.state())
	}
	a.sync()
	if d := a.devices()[B.id.String()]; d.State != "active" || d.ApprovedBy != A.id.String() || d.AddedSeq != 1 {
		t.Fatalf("B: %+v", d)
	}
	// Completing twice.
	e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/complete", "", map[string]string{"link": enc64(en.buildLink().Bytes())}), 409, "conflict")
	// Requests for a device already in the account, unknown account,
	// unknown request.
	_, r = a.tryRequest(B, nil)
	e.want(r, 422, "chain_rejected")
	if r.chainError() != "device_exists" {
		t.Fatalf("chain_error %s", r.body)
	}
	e.want(e.do("POST", "/v1/accounts/"+a.id[:60]+"0000/enrollments", "", map[string]string{"type": "add_device", "body": enc64(en.raw)}), 404, "not_found")
	e.want(e.do("GET", "/v1/enrollments/0123456789abcdef0123456789abcdef", "", nil), 404, "not_found")
	e.want(e.do("POST", "/v1/accounts/"+a.id+"/enrollments", "", map[string]string{"type": "revoke_device", "body": enc64(en.raw)}), 400, "bad_request")
	e.want(e.do("POST", "/v1/accounts/"+a.id+"/enrollments", "", map[string]string{"type": "replace_device", "body": enc64(en.raw)}), 400, "bad_request")
}

func TestEnrollmentApprovalErrors(t *testing.T) {
	e := newEnv(t)
	A, B, C := newDev("alice/A"), newDev("alice/B"), newDev("alice/C")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	m := e.newAccount("mallory", newDev("mallory/M"), chain.DefaultPolicy())
	en := a.requestAdd(B)
	// A device of another account may not approve.
	st, ty := en.statement()
	sg, _ := chain.SignApproval(st, ty, chain.RoleDevice, newDev("mallory/M").id, newDev("mallory/M").key())
	e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/approve", m.token(newDev("mallory/M")), map[string]any{"head": a.head(), "signature": enc64(sg.Sig)}), 403, "forbidden")
	// A signature by another key than the approver's.
	sg, _ = chain.SignApproval(st, ty, chain.RoleDevice, A.id, C.key())
	r := e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/approve", a.token(A), map[string]any{"head": a.head(), "signature": enc64(sg.Sig)}), 422, "chain_rejected")
	if r.chainError() != "bad_signature" {
		t.Fatalf("chain_error: %s", r.body)
	}
	// Only the Ed25519 half.
	r = e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/approve", a.token(A), map[string]any{"head": a.head(), "signature": enc64(sg.Sig[:64])}), 422, "chain_rejected")
	if r.chainError() != "missing_pq" {
		t.Fatalf("chain_error: %s", r.body)
	}
	// An approval against an old head (stale or replayed).
	old := a.head()
	a.add(C, A)
	sg, _ = chain.SignApproval(st, ty, chain.RoleDevice, A.id, A.key())
	r = e.want(e.do("POST", "/v1/enrollments/"+en.rid+"/approve", a.token(A), map[string]any{"head": old, "signature": enc64(sg.Sig)}), 409, "conflict")
	if h := r.m["error"].(map[string]any)["head"].(map[string]any); h["seq"] != float64(1) {
		t.Fatalf("conflict head: %s", r.body)
	}
	if en.state() != "pending" {
		t.Fatal("a refused approval changed the request")
	}
	// Approved at head 1, then the head moves before completion: the
	// request is pending again and must be approved anew.
	e.want(en.approve(A), 200, "")
	e.want(a.post(A, a.rotateKEMLink(C, 1)), http.StatusCreated, "")
	e.want(en.complete(), 409, "conflict")
	if en.state() != "pending" {
		t.Fatalf("after a moved head the request is %s", en.state())
	}
	a.sync()
	e.want(en.approve(A), 200, "")
	e.want(en.complete(), http.StatusCreated, "")
	// A link whose body differs from the request's.
	D := newDev("alice/D")
	en2 := a.requestAdd(D)
	a.sync()
	e.want(en2.approve(A), 200, "")
	other := *en2
	other.body = &chain.AddDevice{Device: newDev("alice/E").device(), Nonce: nonce(D.label), PairingHash: chain.PairingHash(nonce(D.label), en2.pairing)}
	other.dev = newDev("alice/E")
	e.want(e.do("POST", "/v1/enrollments/"+en2.rid+"/complete", "", map[string]string{"link": enc64(other.buildLink().Bytes())}), 400, "bad_request")
	// Without the new device's proof of possession.
	d := a.draft(en2.body)
	stm, _ := en2.statement()
	sgA, _ := chain.SignApproval(stm, chain.TypeAddDevice, chain.RoleDevice, A.id, A.key())
	d.AddSignature(sgA)
	r = e.want(e.do("POST", "/v1/enrollments/"+en2.rid+"/complete", "", map[string]string{"link": enc64(link(t, d).Bytes())}), 422, "chain_rejected")
	if r.chainError() != "missing_signature" {
		t.Fatalf("chain_error: %s", r.body)
	}
	e.want(en2.complete(), http.StatusCreated, "")
}

func TestEnrollmentExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EnrollmentTTL = 5 * time.Minute })
	A, B, C := newDev("alice/A"), newDev("alice/B"), newDev("alice/C")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	en := a.requestAdd(B)
	e.clock.Add(5*time.Minute + time.Second)
	e.want(en.approve(A), 410, "expired")
	if en.state() != "expired" {
		t.Fatalf("state %s", en.state())
	}
	r := e.want(e.do("GET", "/v1/accounts/"+a.id+"/enrollments", a.token(A), nil), 200, "")
	if len(r.m["enrollments"].([]any)) != 0 {
		t.Fatalf("expired request listed: %s", r.body)
	}
	// Approved, then expired before completion.
	en2 := a.requestAdd(C)
	e.want(en2.approve(A), 200, "")
	e.clock.Add(6 * time.Minute)
	a.sync()
	e.want(e.do("POST", "/v1/enrollments/"+en2.rid+"/complete", "", map[string]string{"link": enc64(en2.buildLink().Bytes())}), 410, "expired")
	// The janitor's sweep records the expiry in the audit log once.
	en3 := a.requestAdd(newDev("alice/D"))
	e.clock.Add(6 * time.Minute)
	e.srv.sweep(t.Context())
	got, err := e.srv.store.Enrollment(t.Context(), en3.rid)
	testkit.NoErr(t, err)
	if got.State != store.EnrollExpired {
		t.Fatalf("after the sweep: %s", got.State)
	}
	entries, _ := e.srv.store.Audit(t.Context(), store.AuditFilter{})
	n := 0
	for _, en := range entries {
		if en.Action == "enrollment.expire" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d expiry audit entries, want 3", n)
	}
}

func TestReplaceDevice(t *testing.T) {
	e := newEnv(t)
	a, A, B := e.aliceAB()
	N := newDev("alice/N")
	en, r := a.tryRequest(N, B)
	e.want(r, http.StatusCreated, "")
	if r.str("type") != "replace_device" {
		t.Fatal(r.body)
	}
	// Only the replaced device approves a replacement.
	e.want(en.approve(A), 403, "forbidden")
	e.want(en.approve(B), 200, "")
	tokB := a.token(B)
	e.want(en.complete(), http.StatusCreated, "")
	a.sync()
	devs := a.devices()
	if devs[B.id.String()].State != "retired" || devs[N.id.String()].State != "active" || devs[N.id.String()].ApprovedBy != B.id.String() {
		t.Fatalf("after replacement: %+v", devs)
	}
	e.want(e.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
	// Replacing a device that is not active.
	_, r = a.tryRequest(newDev("alice/Z"), B)
	e.want(r, 422, "chain_rejected")
}

// Concurrent approvals of one request: exactly one wins.
func TestConcurrentApprovals(t *testing.T) { storetest.Engines(t, testConcurrentApprovals) }

func testConcurrentApprovals(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	a, A, B := e.aliceAB()
	C := newDev("alice/C")
	en := a.requestAdd(C)
	a.token(A)
	a.token(B)
	codes := make([]int, 8)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			by := A
			if i%2 == 1 {
				by = B
			}
			codes[i] = en.approve(by).code
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 409:
		default:
			t.Fatalf("approval got %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d approvals won, want 1 (%v)", ok, codes)
	}
	e.want(en.complete(), http.StatusCreated, "")
}
