package command

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

func TestManagedOrganisation(t *testing.T) { storetest.Engines(t, testManagedOrganisation) }

func testManagedOrganisation(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	o := e.newOrg("Acme", Policy{RequireAdminApproval: true, RecoveryDelaySeconds: 3600})
	code := e.invite(o, "alice")
	// The invite tells the device what its genesis must carry.
	r := e.want(e.do("GET", "/v1/invites/"+code, "", nil), 200, "")
	if r.str("org_id") != o.ID || r.str("org_name") != "Acme" || r.str("account_name") != "alice" || r.str("admin_key") != enc64(o.AdminKey.Bytes()) ||
		r.m["policy"].(map[string]any)["require_admin_approval"] != true || r.m["policy"].(map[string]any)["recovery_delay_seconds"] != float64(3600) {
		t.Fatalf("invite: %s", r.body)
	}
	e.want(e.do("GET", "/v1/invites/"+strings.Repeat("a", 32), "", nil), 404, "not_found")
	e.want(e.do("GET", "/v1/invites/BAD!", "", nil), 400, "bad_request")

	A, B := newDev("alice/A"), newDev("alice/B")
	org := &chain.Org{ID: o.ID, AdminKey: o.AdminKey}
	// Wrong name for the invite; a policy other than the organisation's;
	// another admin key.
	_, r = e.tryAccount("alice2", A, o.Policy.ChainPolicy(), org, code)
	e.want(r, 403, "forbidden")
	_, r = e.tryAccount("alice", A, chain.DefaultPolicy(), org, code)
	e.want(r, 422, "policy_rejected")
	_, r = e.tryAccount("alice", A, o.Policy.ChainPolicy(), &chain.Org{ID: o.ID, AdminKey: testKey("fake admin").Public()}, code)
	e.want(r, 422, "policy_rejected")
	_, r = e.tryAccount("alice", A, chain.DefaultPolicy(), nil, code)
	e.want(r, 422, "policy_rejected")

	a, r := e.tryAccount("alice", A, o.Policy.ChainPolicy(), org, code)
	e.want(r, http.StatusCreated, "")
	if got, ok := a.st.Org(); !ok || got.ID != o.ID {
		t.Fatal("the account is not managed")
	}
	// The invite is used up.
	_, r = e.tryAccount("alice", newDev("alice/A2"), o.Policy.ChainPolicy(), org, code)
	e.want(r, 410, "expired")

	// Enrollment waits for the admin after the device approved.
	en := a.requestAdd(B)
	r = e.want(en.approve(A), 200, "")
	if r.str("state") != "device_approved" {
		t.Fatalf("state after the device approved: %s", r.body)
	}
	e.want(en.complete(), 409, "conflict")
	r = e.want(e.do("GET", "/v1/admin/enrollments", o.AdminToken, nil), 200, "")
	if l := r.m["enrollments"].([]any); len(l) != 1 || l[0].(map[string]any)["request_id"] != en.rid {
		t.Fatalf("admin enrollments: %s", r.body)
	}
	// Admin authentication and scope.
	e.want(e.do("GET", "/v1/admin/enrollments", "", nil), 401, "unauthorized")
	e.want(e.do("GET", "/v1/admin/enrollments", "eat_wrong", nil), 401, "unauthorized")
	e.want(e.do("GET", "/v1/admin/enrollments", a.token(A), nil), 401, "unauthorized")
	other := e.newOrg("Other", Policy{})
	e.want(e.do("POST", "/v1/admin/enrollments/"+en.rid+"/approve", other.AdminToken, nil), 403, "forbidden")
	r = e.want(e.do("POST", "/v1/admin/enrollments/"+en.rid+"/approve", o.AdminToken, nil), 200, "")
	if r.str("state") != "approved" || len(r.m["approvals"].([]any)) != 2 {
		t.Fatalf("after the admin approved: %s", r.body)
	}
	e.want(e.do("POST", "/v1/admin/enrollments/"+en.rid+"/approve", o.AdminToken, nil), 409, "conflict")
	e.want(en.complete(), http.StatusCreated, "")
	a.sync()
	if rec, _ := a.st.Device(B.id); !rec.ApprovedBy.Org {
		t.Fatal("B joined without the organisation's counter-signature")
	}

	// Admin reads.
	r = e.want(e.do("GET", "/v1/admin/accounts", o.AdminToken, nil), 200, "")
	if l := r.m["accounts"].([]any); len(l) != 1 || l[0].(map[string]any)["account_id"] != a.id || l[0].(map[string]any)["name"] != "alice" {
		t.Fatalf("admin accounts: %s", r.body)
	}
	r = e.want(e.do("GET", "/v1/admin/accounts/"+a.id+"/devices", o.AdminToken, nil), 200, "")
	if len(r.m["devices"].([]any)) != 2 {
		t.Fatalf("admin devices: %s", r.body)
	}
	e.want(e.do("GET", "/v1/admin/accounts/"+a.id+"/devices", other.AdminToken, nil), 403, "forbidden")
	r = e.want(e.do("GET", "/v1/admin/accounts", other.AdminToken, nil), 200, "")
	if len(r.m["accounts"].([]any)) != 0 {
		t.Fatal("another organisation sees the account")
	}

	// The admin denies a request.
	C := newDev("alice/C")
	en2 := a.requestAdd(C)
	r = e.want(e.do("POST", "/v1/admin/enrollments/"+en2.rid+"/deny", o.AdminToken, map[string]string{"reason": "unknown laptop"}), 200, "")
	if r.str("state") != "denied" || r.str("reason") != "unknown laptop" {
		t.Fatalf("deny: %s", r.body)
	}
	e.want(en2.approve(A), 403, "forbidden")

	// The admin revokes B: B is cut off.
	tokB := a.token(B)
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", other.AdminToken, map[string]string{"device_id": B.id.String()}), 403, "forbidden")
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": B.id.String(), "reason": "lost"}), 201, "")
	a.sync()
	if rec, _ := a.st.Device(B.id); rec.Status != chain.StatusRevoked || rec.EndedBy.Kind != chain.ByOrg {
		t.Fatalf("B after the admin revoked it: %+v", rec.Status)
	}
	e.want(e.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
	_, r = a.tryLogin(B)
	e.want(r, 403, "device_revoked")
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": B.id.String()}), 422, "chain_rejected")
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": newDev("nobody").id.String()}), 404, "not_found")

	// Every step is in the organisation's audit log, and only there.
	r = e.want(e.do("GET", "/v1/admin/audit?limit=100", o.AdminToken, nil), 200, "")
	var actions []string
	for _, en := range r.m["entries"].([]any) {
		actions = append(actions, en.(map[string]any)["action"].(string))
	}
	got := strings.Join(actions, ",")
	want := "org.create,invite.create,account.create,enrollment.request,enrollment.approve,enrollment.admin_approve,enrollment.complete,enrollment.request,enrollment.deny,device.admin_revoke"
	if got != want {
		t.Fatalf("audit:\n got %s\nwant %s", got, want)
	}
	r = e.want(e.do("GET", "/v1/admin/audit?after=3&limit=2", o.AdminToken, nil), 200, "")
	if len(r.m["entries"].([]any)) != 2 {
		t.Fatalf("paged audit: %s", r.body)
	}
	r = e.want(e.do("GET", "/v1/admin/audit", other.AdminToken, nil), 200, "")
	if n := len(r.m["entries"].([]any)); n != 1 {
		t.Fatalf("other organisation's audit has %d entries", n)
	}
	if strings.Contains(e.logText(), o.AdminToken) || strings.Contains(e.logText(), code) {
		t.Fatal("a secret reached the log")
	}
}

func TestOrganisationMinimumProtection(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("Hardened", Policy{MinLevel: "hardware-tpm", RecoveryDelaySeconds: 0})
	A := newDev("h/A")
	A.level = chain.LevelHardwareTPM
	// A software first device: the chain refuses it.
	code := e.invite(o, "soft")
	_, r := e.tryManaged(o, "soft", newDev("soft/A"), code)
	e.want(r, 422, "chain_rejected")
	if r.chainError() != "protection_level" {
		t.Fatal(r.body)
	}
	// A hardware first device joins; a software device's enrollment
	// request is refused before anything is signed.
	h := e.newManaged(o, "hard", A)
	_, r = h.tryRequest(newDev("h/B"), nil)
	e.want(r, 422, "policy_rejected")
	C := newDev("h/C")
	C.level = chain.LevelHardwarePKCS11
	_, r = h.tryRequest(C, nil)
	e.want(r, http.StatusCreated, "")
	if _, err := CreateOrg(t.Context(), Config{DataDir: e.cfg.DataDir, Store: e.srv.store, KeystorePassphrase: []byte("x"), KeystoreBackend: testkit.SoftBackend}, OrgSpec{Name: "Bad", Policy: Policy{MinLevel: "titanium"}}); err == nil {
		t.Fatal("an unknown protection level was accepted")
	}
	if _, err := CreateOrg(t.Context(), Config{DataDir: e.cfg.DataDir, Store: e.srv.store, KeystorePassphrase: []byte("test passphrase"), KeystoreBackend: testkit.SoftBackend}, OrgSpec{Name: "Hardened"}); err == nil {
		t.Fatal("a second organisation with the same name was created")
	}
}

func TestInviteExpiry(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("Acme", Policy{})
	code := e.invite(o, "late")
	e.clock.Add(2 * time.Hour)
	e.want(e.do("GET", "/v1/invites/"+code, "", nil), 410, "expired")
	_, r := e.tryManaged(o, "late", newDev("late/A"), code)
	e.want(r, 410, "expired")
	if _, err := e.srv.store.AccountByName(t.Context(), "late"); err == nil {
		t.Fatal("an account was created with an expired invite")
	}
	var _ = store.ErrNotFound
}
