package device_test

import (
	"context"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// A recovery started with a leaked code is visible on every other device
// of the account, from its own verified chain: who (the new device's name
// and id), since when, and when it can complete; any active device vetoes
// it without being told the id, and the recovering device cannot complete.
func TestOwnerSeesAndVetoesPendingRecovery(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "olga", DeviceName: "a", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	enroll(t, ctx, a, b, "olga")
	if st := testkit.Must(a.Status(ctx, true)); st.Recovery != nil {
		t.Fatalf("a recovery is shown before any was requested: %+v", st.Recovery)
	}
	if _, _, err := a.Veto(ctx, ""); !errors.Is(err, device.ErrNoPendingRecovery) {
		t.Fatalf("veto with nothing pending: %v", err)
	}

	thief := w.agent("thief")
	requested := w.clock.Now()
	rr := testkit.Must(thief.Recover(ctx, device.RecoverOptions{Account: "olga", DeviceName: "thief-phone", Code: res.RecoveryCode.Reveal()}))
	w.clock.Add(time.Minute)

	// Status (online) on A, and the device list on B, both show it.
	st := testkit.Must(a.Status(ctx, true))
	ri := st.Recovery
	if ri == nil {
		t.Fatal("A's status does not show the pending recovery")
	}
	if ri.RequestID != rr.RecoveryID || ri.Device != rr.Device || ri.Name != "thief-phone" ||
		!ri.RequestedAt.Equal(requested) || !ri.NotBefore.Equal(requested.Add(time.Hour)) {
		t.Fatalf("A shows %+v; want request %s by device %s (thief-phone) at %v, completing at %v", ri, rr.RecoveryID, rr.Device, requested, requested.Add(time.Hour))
	}
	// Offline status reads the same from the stored verified chain.
	if off := testkit.Must(a.Status(ctx, false)); off.Recovery == nil || off.Recovery.RequestID != rr.RecoveryID {
		t.Fatalf("offline status: %+v", off.Recovery)
	}
	check3(b.Devices(ctx, ""))
	if bri := b.PendingRecovery(res.Account); bri == nil || bri.RequestID != rr.RecoveryID {
		t.Fatalf("B's verified chain does not show the pending recovery: %+v", bri)
	}
	// The recovering device's own status does not warn about itself.
	if ts := testkit.Must(thief.Status(ctx, true)); ts.Recovery != nil {
		t.Fatalf("the recovering device warns about its own request: %+v", ts.Recovery)
	}

	// A wrong id is refused, naming the pending one; nothing is appended.
	head := testkit.Must(a.Status(ctx, true)).Head
	if _, _, err := a.Veto(ctx, strings.Repeat("ab", 32)); !errors.Is(err, device.ErrNoPendingRecovery) || !strings.Contains(err.Error(), rr.RecoveryID) {
		t.Fatalf("veto of another id: %v", err)
	}
	if h := testkit.Must(a.Status(ctx, true)).Head; h != head {
		t.Fatalf("a refused veto moved the head: %v -> %v", head, h)
	}
	// No id: the pending request is vetoed.
	vi, _, err := b.Veto(ctx, "")
	if err != nil {
		t.Fatalf("veto without an id: %v", err)
	}
	if vi.RequestID != rr.RecoveryID {
		t.Fatalf("vetoed %s, want %s", vi.RequestID, rr.RecoveryID)
	}
	if st := testkit.Must(a.Status(ctx, true)); st.Recovery != nil {
		t.Fatalf("still pending after the veto: %+v", st.Recovery)
	}
	w.clock.Add(2 * time.Hour)
	if err := thief.Finish(ctx); err == nil || errors.Is(err, device.ErrWaiting) {
		t.Fatalf("the vetoed recovery completed or still waits: %v", err)
	}
	if _, devs, _ := check3(a.Devices(ctx, "")); len(devs) != 2 {
		t.Fatalf("devices after the veto: %+v", devs)
	}
}

// rvPostRecovery sends Command a recovery_request for a fresh device,
// signed with rk, at the head of acct's chain as the server serves it.
func rvPostRecovery(t *testing.T, w *world, acct chain.AccountID, rk *hybrid.PrivateKey) error {
	t.Helper()
	ctx := context.Background()
	cl := testkit.Must(client.New(w.url, nil))
	view := testkit.Must(cl.Chain(ctx, acct, -1))
	links := testkit.Must(chain.ParseChain(view.Links))
	st := testkit.Must(chain.VerifyChain(nil, links, w.clock.Now()))
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	idk := testkit.Must(hybrid.NewPrivateKey(seed))
	kem := testkit.Must(hpke.MLKEM768X25519().GenerateKey())
	var id chain.DeviceID
	rand.Read(id[:])
	dev := chain.Device{ID: id, Name: "posted", Identity: idk.Public(), KEM: kem.PublicKey().Bytes(), Level: chain.LevelSoftware}
	d := testkit.Must(chain.NewDraft(st, w.clock.Now(), &chain.RecoveryRequest{Device: dev}))
	testkit.NoErr(t, d.Sign(chain.RoleRecovery, rk))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, idk))
	l := testkit.Must(d.Link())
	_, err := cl.CreateRecovery(ctx, l)
	return err
}

// enigm recovery rotate: a rotate_recovery link replaces the recovery key;
// the old code is refused (by the device and by Command, whose chain
// verification no longer trusts the old key), the new one works, and a
// pending recovery is cancelled by the rotation.
func TestRotateRecoveryCode(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "pia", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	enroll(t, ctx, a, b, "pia")
	oldCode := res.RecoveryCode.Reveal()
	oldKey := testkit.Must(res.RecoveryCode.Key())

	// Before the rotation the old code starts a recovery...
	if err := rvPostRecovery(t, w, res.Account, oldKey); err != nil {
		t.Fatalf("recovery with the current code: %v", err)
	}
	if st := testkit.Must(a.Status(ctx, true)); st.Recovery == nil {
		t.Fatal("no pending recovery")
	}
	// ...which the rotation cancels.
	nc, _, err := b.RotateRecovery(ctx)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	newCode := nc.Reveal()
	if newCode == oldCode {
		t.Fatal("the rotation kept the old code")
	}
	st := testkit.Must(a.Sync(ctx, res.Account))
	if _, ok := st.PendingRecovery(); ok {
		t.Fatal("the rotation left the recovery pending")
	}
	newKey := testkit.Must(nc.Key())
	if !st.RecoveryKey().Equal(newKey.Public()) || st.RecoveryKey().Equal(oldKey.Public()) {
		t.Fatal("A's verified chain does not carry the new recovery key")
	}

	// The old code is useless: the device refuses it, and Command refuses a
	// request signed with the old key.
	if _, err := w.agent("c").Recover(ctx, device.RecoverOptions{Account: "pia", Code: oldCode}); !errors.Is(err, device.ErrWrongRecoveryCode) {
		t.Fatalf("recover with the old code: %v", err)
	}
	var ae *client.APIError
	if err := rvPostRecovery(t, w, res.Account, oldKey); !errors.As(err, &ae) || ae.ChainError != "bad_signature" {
		t.Fatalf("Command did not refuse a recovery request signed with the old recovery key for its signature: %v", err)
	}
	if st := testkit.Must(a.Status(ctx, true)); st.Recovery != nil {
		t.Fatalf("a recovery with the old code is pending: %+v", st.Recovery)
	}
	// The new code works.
	rr := testkit.Must(w.agent("d").Recover(ctx, device.RecoverOptions{Account: "pia", DeviceName: "d", Code: newCode}))
	if st := testkit.Must(a.Status(ctx, true)); st.Recovery == nil || st.Recovery.RequestID != rr.RecoveryID {
		t.Fatalf("the new code's recovery is not pending: %+v", st.Recovery)
	}
}

// Revoking this device, or the account's last active device, needs its own
// confirmation; without it nothing is appended.
func TestRevokeSelfAndLastNeedConfirmation(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, b := w.agent("a"), w.agent("b")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "ruth"}))
	enroll(t, ctx, a, b, "ruth")
	aid := chain.DeviceID(a.Keystore().DeviceID())
	bid := chain.DeviceID(b.Keystore().DeviceID())

	if tg := testkit.Must(a.CheckRevoke(ctx, aid)); !tg.Self || tg.Last {
		t.Fatalf("target A from A: %+v", tg)
	}
	head := testkit.Must(a.Status(ctx, true)).Head
	if _, err := a.Revoke(ctx, aid, device.RevokeOptions{}); !errors.Is(err, device.ErrRevokeThisDevice) {
		t.Fatalf("A revokes itself without confirmation: %v", err)
	}
	if _, err := a.Revoke(ctx, aid, device.RevokeOptions{LastDevice: true}); !errors.Is(err, device.ErrRevokeThisDevice) {
		t.Fatalf("A revokes itself with the wrong confirmation: %v", err)
	}
	if h := testkit.Must(a.Status(ctx, true)).Head; h != head {
		t.Fatalf("a refused revocation moved the head: %v -> %v", head, h)
	}
	testkit.Must(a.Revoke(ctx, aid, device.RevokeOptions{ThisDevice: true}))
	if _, err := a.Receive(ctx); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("A after revoking itself: %v", err)
	}

	// B is now the last active device.
	if tg := testkit.Must(b.CheckRevoke(ctx, bid)); !tg.Self || !tg.Last {
		t.Fatalf("target B from B: %+v", tg)
	}
	if _, err := b.Revoke(ctx, bid, device.RevokeOptions{ThisDevice: true}); !errors.Is(err, device.ErrRevokeLastDevice) {
		t.Fatalf("B revokes the last device without confirmation: %v", err)
	}
	if st := testkit.Must(b.Status(ctx, true)); st.State != device.StatusActive {
		t.Fatalf("B after a refused revocation: %+v", st)
	}
	testkit.Must(b.Revoke(ctx, bid, device.RevokeOptions{ThisDevice: true, LastDevice: true}))
	if _, err := b.Receive(ctx); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("B after revoking itself: %v", err)
	}
}
