package device_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/commandtest"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
)

type world struct {
	t     testing.TB
	url   string
	cfg   command.Config
	clock *testkit.Clock // shared by the server and the devices: waits pass without sleeping
}

func newWorld(t *testing.T) *world { return newWorldWith(t, nil) }

func newWorldWith(t testing.TB, adjust func(*command.Config)) *world {
	t.Helper()
	w := &world{t: t, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second))}
	w.cfg = command.Config{DataDir: t.TempDir(), RateLimits: &command.RateLimits{Disabled: true},
		KeystoreBackend: testkit.SoftBackend, KeystorePassphrase: []byte("command"), Clock: w.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), JanitorInterval: -1,
		DevAllowZeroRecoveryDelay: true} // test organisations wait 0-60s
	if adjust != nil {
		adjust(&w.cfg)
	}
	w.url = commandtest.Serve(t, w.cfg)
	return w
}

// serverURL is where the agents made now reach the server.
func (w *world) serverURL() *url.URL {
	u, err := url.Parse(w.url)
	if err != nil {
		w.t.Fatal(err)
	}
	return u
}

// front puts h (a test's hostile or recording server) in front of the
// server: the agents made afterwards talk to h.
func (w *world) front(t testing.TB, h http.Handler) {
	proxy := httptest.NewServer(h)
	t.Cleanup(proxy.Close)
	w.url = proxy.URL
}

// agent opens a software device agent named name on w's server.
func (w *world) agent(name string) *device.Agent {
	w.t.Helper()
	return w.open(w.softOptions(filepath.Join(w.t.TempDir(), name), "pw "+name))
}

// softOptions are the options of a software agent at home (fast KDF
// costs) on w's server, with w's clock and passphrase pass.
func (w *world) softOptions(home, pass string) device.Options {
	return device.Options{Home: home, Server: w.url,
		Passphrase: func(bool) ([]byte, error) { return []byte(pass), nil },
		Backend:    testkit.SoftBackend, NewBackend: func() (backend.Backend, error) { return testkit.SoftBackend("soft") },
		Clock: w.clock.Now, Poll: time.Millisecond}
}

// open opens an agent with o; it is closed when the test ends.
func (w *world) open(o device.Options) *device.Agent {
	w.t.Helper()
	a, err := device.Open(o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { a.Close() })
	return a
}

func check3[A, B, C any](a A, b B, c C, err error) (A, B, C) {
	if err != nil {
		panic(err)
	}
	return a, b, c
}

// enroll joins b to account through approver a.
func enroll(t testing.TB, ctx context.Context, a, b *device.Agent, account string) *device.EnrollResult {
	t.Helper()
	r := testkit.Must(b.Enroll(ctx, device.EnrollOptions{Account: account, DeviceName: "b"}))
	if len(r.SAS) == 0 {
		t.Fatal("no SAS to compare")
	}
	ap := testkit.Must(a.Approve(ctx, r.RequestID, r.PairingCode, nil))
	if ap.SAS != r.SAS[0].SAS {
		t.Fatalf("the two devices show different SAS: %s vs %s", ap.SAS, r.SAS[0].SAS)
	}
	if err := b.Finish(ctx); err != nil {
		t.Fatalf("finish enrollment: %v", err)
	}
	return r
}

func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	code := res.RecoveryCode.Reveal()
	enroll(t, ctx, a, b, "alice")
	_, devs, _ := check3(a.Devices(ctx, ""))
	if len(devs) != 2 || devs[1].State != "active" {
		t.Fatalf("devices: %+v", devs)
	}

	// Message sync: A sends to its own account, B receives.
	sent := testkit.Must(a.Send(ctx, "alice", []byte("hello B")))
	if len(sent.Accepted) != 1 {
		t.Fatalf("send: %+v", sent)
	}
	got := testkit.Must(b.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "hello B" || got.Messages[0].From != res.Account {
		t.Fatalf("receive: %+v", got)
	}
	// A call: both sides see the same fingerprint.
	call := testkit.Must(a.Call(ctx, "alice", time.Hour))
	fp := testkit.Must(b.AcceptCall(ctx, call.CallID))
	if fp != call.Fingerprint {
		t.Fatalf("fingerprints differ: %s %s", fp, call.Fingerprint)
	}
	testkit.NoErr(t, a.EndCall(ctx, call.CallID))

	// Rotation on B, then A still reaches B.
	if _, _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Must(a.Send(ctx, "alice", []byte("after rotation")))
	got = testkit.Must(b.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "after rotation" {
		t.Fatalf("after rotation: %+v", got)
	}

	// A revokes B: nothing more reaches B, and B destroys its keys once
	// its verified chain shows the revocation.
	bid := b.Keystore().DeviceID()
	testkit.Must(a.Revoke(ctx, chain.DeviceID(bid), device.RevokeOptions{}))
	// A's verified chain has no other active device: nothing is sealed.
	if sent, err := a.Send(ctx, "alice", []byte("after revocation")); err == nil {
		t.Fatalf("a message was sealed after the only other device was revoked: %+v", sent)
	}
	if _, err := b.Receive(ctx); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("revoked B receives: %v", err)
	}
	keys := testkit.Must(b.Keystore().List())
	for _, k := range keys {
		if k.State != lifecycle.Revoked {
			t.Fatalf("B's key %s is %v after revocation", k.ID.Short(), k.State)
		}
	}
	if _, err := b.AcceptCall(ctx, "call-x"); !errors.Is(err, device.ErrRevoked) && !errors.Is(err, device.ErrNotActive) {
		t.Fatalf("revoked B joins a call: %v", err)
	}

	// Recovery on a new device C, after the waiting period: C joins and
	// reads only what is sent after it joined.
	bob := w.agent("bob")
	testkit.Must(bob.Init(ctx, device.InitOptions{Account: "bob"}))
	testkit.Must(bob.Send(ctx, "alice", []byte("before C")))
	c := w.agent("c")
	rr := testkit.Must(c.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "c", Code: code}))
	if err := c.Finish(ctx); !errors.Is(err, device.ErrWaiting) {
		t.Fatalf("recovery before its waiting period: %v", err)
	}
	w.clock.Add(time.Hour + time.Minute)
	if err := c.Finish(ctx); err != nil {
		t.Fatalf("recovery after its waiting period: %v", err)
	}
	st := testkit.Must(c.Status(ctx, true))
	if st.State != device.StatusActive || st.Device != rr.Device {
		t.Fatalf("C after recovery: %+v", st)
	}
	got = testkit.Must(c.Receive(ctx))
	if len(got.Messages) != 0 {
		t.Fatalf("C read a message sent before it joined: %+v", got.Messages)
	}
	testkit.Must(bob.Send(ctx, "alice", []byte("welcome C")))
	got = testkit.Must(c.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "welcome C" {
		t.Fatalf("C after joining: %+v", got)
	}
	// A got both: the one from before C joined, and the new one.
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 2 {
		t.Fatalf("A received %d messages from bob, want 2", len(got.Messages))
	}
}

func TestRecoveryVeto(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a := w.agent("a")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "dora", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	c := w.agent("c")
	rr := testkit.Must(c.Recover(ctx, device.RecoverOptions{Account: "dora", Code: res.RecoveryCode.Reveal()}))
	if _, _, err := a.Veto(ctx, rr.RecoveryID); err != nil {
		t.Fatal(err)
	}
	w.clock.Add(2 * time.Hour)
	if err := c.Finish(ctx); err == nil || errors.Is(err, device.ErrWaiting) {
		t.Fatalf("a vetoed recovery completed or still waits: %v", err)
	}
	// A wrong recovery code is refused before anything is sent.
	other := testkit.Must(w.agent("x").Init(ctx, device.InitOptions{Account: "eve"}))
	if _, err := w.agent("y").Recover(ctx, device.RecoverOptions{Account: "dora", Code: other.RecoveryCode.Reveal()}); !errors.Is(err, device.ErrWrongRecoveryCode) {
		t.Fatalf("another account's code: %v", err)
	}
}

func TestPairingCodeMismatch(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, b := w.agent("a"), w.agent("b")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "frank"}))
	r := testkit.Must(b.Enroll(ctx, device.EnrollOptions{Account: "frank"}))
	wrong := "0000-0000-0000-0000"
	if _, err := a.Approve(ctx, r.RequestID, wrong, nil); !errors.Is(err, device.ErrPairingCode) {
		t.Fatalf("wrong pairing code: %v", err)
	}
	// Lower case and without dashes is the same code.
	lc := strings.ToLower(strings.ReplaceAll(r.PairingCode, "-", ""))
	testkit.Must(a.Approve(ctx, r.RequestID, lc, nil))
	testkit.NoErr(t, b.Finish(ctx))
}

func TestManagedOrganisation(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	org := testkit.Must(command.CreateOrg(ctx, w.cfg, command.OrgSpec{Name: "acme", Policy: command.Policy{RequireAdminApproval: true, RecoveryDelaySeconds: 60}}))
	inv := testkit.Must(command.CreateInvite(ctx, w.cfg, "acme", "grace", 0))
	a, b := w.agent("a"), w.agent("b")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "grace", Invite: inv.Code, Org: org.ID}))
	r := testkit.Must(b.Enroll(ctx, device.EnrollOptions{Account: "grace"}))
	ap := testkit.Must(a.Approve(ctx, r.RequestID, r.PairingCode, nil))
	if ap.State != "device_approved" {
		t.Fatalf("managed enrollment after the device approval: %s", ap.State)
	}
	if err := b.Finish(ctx); !errors.Is(err, device.ErrWaiting) {
		t.Fatalf("joined without the admin's approval: %v", err)
	}
	adminApprove(t, w, org.AdminToken, r.RequestID)
	if err := b.Finish(ctx); err != nil {
		t.Fatalf("after the admin's approval: %v", err)
	}
	_, devs, _ := check3(b.Devices(ctx, ""))
	if len(devs) != 2 || !strings.HasSuffix(devs[1].ApprovedBy, "+org") {
		t.Fatalf("devices: %+v", devs)
	}
}

func adminApprove(t *testing.T, w *world, token, rid string) {
	t.Helper()
	resp, err := httpPostJSON(w.url+"/v1/admin/enrollments/"+rid+"/approve", token, "{}")
	if err != nil || resp != 200 {
		t.Fatalf("admin approve: %d %v", resp, err)
	}
}

// Replacement: the new device takes the old one's place; only the old
// device may approve, and it ends retired, its keys destroyed when it next
// syncs.
func TestReplaceDevice(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	old, other, nu := w.agent("old"), w.agent("other"), w.agent("new")
	testkit.Must(old.Init(ctx, device.InitOptions{Account: "quinn"}))
	enroll(t, ctx, old, other, "quinn")
	oldID := old.Keystore().DeviceID()
	r := testkit.Must(nu.Enroll(ctx, device.EnrollOptions{Account: "quinn", Replace: hex.EncodeToString(oldID[:])}))
	if len(r.SAS) != 1 || r.SAS[0].Device != chain.DeviceID(oldID) {
		t.Fatalf("a replacement shows the SAS with the old device only: %+v", r.SAS)
	}
	if _, err := other.Approve(ctx, r.RequestID, r.PairingCode, nil); err == nil {
		t.Fatal("another device approved a replacement of the old one")
	}
	testkit.Must(old.Approve(ctx, r.RequestID, r.PairingCode, nil))
	testkit.NoErr(t, nu.Finish(ctx))
	_, devs, _ := check3(other.Devices(ctx, ""))
	retired := false
	for _, d := range devs {
		if d.Device == chain.DeviceID(oldID) {
			retired = d.State == "retired"
		}
	}
	if len(devs) != 3 || !retired {
		t.Fatalf("after replacement the old device is not retired: %+v", devs)
	}
	if _, err := old.Receive(ctx); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("the replaced device still works: %v", err)
	}
	keys := testkit.Must(old.Keystore().List())
	for _, k := range keys {
		if k.State.HoldsMaterial() {
			t.Fatalf("the replaced device kept key %s (%v)", k.ID.Short(), k.State)
		}
	}
	// The new device reaches the other one.
	testkit.Must(nu.Send(ctx, "quinn", []byte("from the replacement")))
	if got := testkit.Must(other.Receive(ctx)); len(got.Messages) != 1 {
		t.Fatalf("other received %d messages", len(got.Messages))
	}
}

// The organisation tightens a managed account's policy: Command signs a
// set_policy link with the organisation key, the devices verify it, and the
// next enrollment waits for the admin.
func TestAdminSetsPolicy(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	org := testkit.Must(command.CreateOrg(ctx, w.cfg, command.OrgSpec{Name: "lax", Policy: command.Policy{RecoveryDelaySeconds: 60}}))
	inv := testkit.Must(command.CreateInvite(ctx, w.cfg, "lax", "rita", 0))
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "rita", Invite: inv.Code, Org: org.ID}))
	enroll(t, ctx, a, b, "rita") // no admin needed yet
	code, err := httpPostJSON(w.url+"/v1/admin/accounts/"+hex.EncodeToString(res.Account[:])+"/policy", org.AdminToken,
		`{"require_admin_approval":true,"recovery_delay_seconds":3600,"require_admin_review":false,"min_level":"","require_verified_attestation":false}`)
	if err != nil || code != 201 {
		t.Fatalf("set policy: %d %v", code, err)
	}
	st, err := a.Sync(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Policy().RequireAdminApproval || st.Policy().RecoveryDelay != time.Hour {
		t.Fatalf("the verified policy did not change: %+v", st.Policy())
	}
	c := w.agent("c")
	r := testkit.Must(c.Enroll(ctx, device.EnrollOptions{Account: "rita"}))
	if ap := testkit.Must(a.Approve(ctx, r.RequestID, r.PairingCode, nil)); ap.State != "device_approved" {
		t.Fatalf("after the policy change an enrollment is %s without the admin", ap.State)
	}
}
