package device_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// tmAgentAhead opens an agent whose clock runs ahead of the world's by
// *ahead (changeable while it runs).
func tmAgentAhead(w *world, name string, ahead *atomic.Int64) *device.Agent {
	w.t.Helper()
	o := w.softOptions(filepath.Join(w.t.TempDir(), name), "pw "+name)
	o.Clock = func() time.Time { return w.clock.Now().Add(time.Duration(ahead.Load())) }
	return w.open(o)
}

// A device whose clock runs ahead (within Command's skew) appends a link
// dated ahead of everyone else's clock. The owner's device, with an honest
// clock, dates its links at max(now, head time): its revocation and its veto
// are appendable right after, without waiting for its clock to catch up.
func TestRevokeAndVetoAfterHeadDatedAhead(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	var ahead atomic.Int64
	a := w.agent("a")
	b := tmAgentAhead(w, "b", &ahead)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "tess", DeviceName: "a", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	enroll(t, ctx, a, b, "tess")
	bid := testkit.Must(b.Status(ctx, false)).Device

	ahead.Store(int64(command.DefaultMaxLinkSkew - time.Second))
	if _, _, err := b.Rotate(ctx); err != nil {
		t.Fatalf("rotation dated %v ahead: %v", time.Duration(ahead.Load()), err)
	}
	st := testkit.Must(a.Sync(ctx, res.Account))
	if !st.Time().After(w.clock.Now()) {
		t.Fatalf("the rotation is dated %v, not ahead of the clock %v", st.Time(), w.clock.Now())
	}

	// A recovery request (dated at the head's time by the recovering
	// device) and the owner's veto, both right after the future-dated head.
	r := w.agent("r")
	rr := testkit.Must(r.Recover(ctx, device.RecoverOptions{Account: "tess", DeviceName: "r", Code: res.RecoveryCode.Reveal()}))
	if _, _, err := a.Veto(ctx, rr.RecoveryID); err != nil {
		t.Fatalf("veto right after a head dated ahead: %v", err)
	}

	testkit.Must(a.Revoke(ctx, bid, device.RevokeOptions{}))
	st = testkit.Must(a.Sync(ctx, res.Account))
	if st.IsActive(bid) {
		t.Fatal("b is still active")
	}
	if _, ok := st.PendingRecovery(); ok {
		t.Fatal("the vetoed recovery is still pending")
	}
}
