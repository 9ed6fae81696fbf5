package device_test

import (
	"context"
	"errors"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestRecoveryOnRealWitness runs recovery on witnessed time against
// transparency-dev's witness as its own process (translogtest.StartWitness),
// which cosigns at its real clock. The honest path: a 3 s waiting period
// completes once 3 s of witnessed time have passed, and the owner's
// device accepts the recovered device. The attack: Command's clock (and
// so its link times and its own waiting period) jumps two hours; a second
// recovery (of an account waiting an hour) has its recover link appended,
// which chain.Apply accepts by link times, but the owner's device refuses
// it on the witness's time.
func TestRecoveryOnRealWitness(t *testing.T) {
	ctx := context.Background()
	w, rw := realWitnessWorld(t, "witness.enigm.test/recovery")
	u, _ := url.Parse(w.url)
	w.front(t, httputil.NewSingleHostReverseProxy(u))
	policy := "witness W " + rw.Keys[0] + "\nquorum W\n"
	// The device clock follows real time from here (the witness's clock).
	catchUp := func(ahead time.Duration) {
		if d := time.Now().Add(ahead).Sub(w.clock.Now()); d > 0 {
			w.clock.Add(d.Truncate(time.Second) + time.Second)
		}
	}
	catchUp(0)
	a := witnessedAgent(t, w, "a", policy)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a", RecoveryDelay: 3 * time.Second, SetRecoveryDelay: true}))

	c := witnessedAgent(t, w, "c", policy)
	catchUp(0)
	rr := testkit.Must(c.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "c", Code: res.RecoveryCode.Reveal()}))
	ev := waitWitnessed(t, w, rr.RecoveryID)
	t.Logf("witnessed at %s by the witness process", ev.WitnessedAt)
	deadline := time.Now().Add(30 * time.Second)
	for {
		catchUp(0)
		err := c.Finish(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, device.ErrWaiting) && !errors.Is(err, client.ErrRecoveryNotWitnessed) || time.Now().After(deadline) {
			t.Fatalf("completing the honest recovery: %v\nwitness:\n%s", err, rw.Output())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if time.Now().Before(ev.WitnessedAt.Add(3 * time.Second)) {
		t.Fatalf("completed at %s, before the witnessed end %s", time.Now(), ev.WitnessedAt.Add(3*time.Second))
	}
	if _, devs, _ := check3(a.Devices(ctx, "")); len(devs) != 2 {
		t.Fatalf("the owner after the honest recovery: %d devices", len(devs))
	}

	// The attack, on an account with a waiting period of an hour: the
	// server's clock jumps two hours.
	b := witnessedAgent(t, w, "b", policy)
	catchUp(0)
	bob := testkit.Must(b.Init(ctx, device.InitOptions{Account: "bob", DeviceName: "b", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	thief := witnessedAgent(t, w, "thief", policy)
	rr2 := testkit.Must(thief.Recover(ctx, device.RecoverOptions{Account: "bob", DeviceName: "thief", Code: bob.RecoveryCode.Reveal()}))
	ev2 := waitWitnessed(t, w, rr2.RecoveryID)
	w.clock.Add(2 * time.Hour)
	t.Logf("the thief's finish: %v", thief.Finish(ctx))
	_, err := b.Sync(ctx, bob.Account)
	if !errors.Is(err, client.ErrRecoveryNotWitnessed) || !strings.Contains(err.Error(), "first witnessed at "+rfc(ev2.WitnessedAt)) ||
		!strings.Contains(err.Error(), "completion allowed after "+rfc(ev2.WitnessedAt.Add(time.Hour))) {
		t.Fatalf("the owner's sync of a recover two hours early by witnessed time: %v", err)
	}
	t.Logf("refused: %v", err)
}

// realWitnessWorld is a world whose Command publishes its log (a
// checkpoint every 20 ms) and submits every checkpoint to
// transparency-dev's witness, named name, running as its own process.
func realWitnessWorld(t *testing.T, name string) (*world, *translogtest.RunningWitness) {
	t.Helper()
	var rw *translogtest.RunningWitness
	w := newWorldWith(t, func(c *command.Config) {
		s, err := command.LogSigner(context.Background(), *c)
		if err != nil {
			t.Fatal(err)
		}
		rw = translogtest.StartWitness(t, name, s.Origin(), s.VerifierKeys()[0])
		wit, err := translog.NewWitness(rw.URL, rw.Keys[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		c.LogSigner, c.LogInterval, c.LogWitnesses = s, 20*time.Millisecond, []*translog.Witness{wit}
	})
	return w, rw
}
