package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// testWitness is a tlog-witness add-checkpoint endpoint that cosigns
// every checkpoint it is sent with a translogtest.Cosigner at its own
// clock's time (it checks no consistency proof: these tests are about
// time, not forks; the real witness process is TestWitness's).
type testWitness struct {
	cos   *translogtest.Cosigner
	mu    sync.Mutex
	clock *testkit.Clock // nil: unavailable (503) until set
	down  bool           // unavailable (503)
}

func (tw *testWitness) setDown(d bool) { tw.mu.Lock(); tw.down = d; tw.mu.Unlock() }

func (tw *testWitness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw.mu.Lock()
	clock, down := tw.clock, tw.down
	tw.mu.Unlock()
	if clock == nil || down {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	i := bytes.Index(body, []byte("\n\n"))
	if r.URL.Path != "/add-checkpoint" || i < 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	signed := body[i+2:]
	out := tw.cos.Cosign(signed, clock.Now().Unix())
	w.Write(out[len(signed):])
}

// witnessFront tampers with the server's recovery evidence on request.
type witnessFront struct {
	mu     sync.Mutex
	tamper func(*api.RecoveryWitness)
	proxy  *httputil.ReverseProxy
	back   string
}

func (f *witnessFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	tamper := f.tamper
	f.mu.Unlock()
	if tamper == nil || !strings.HasSuffix(r.URL.Path, "/witness") {
		f.proxy.ServeHTTP(w, r)
		return
	}
	resp, err := http.Get(f.back + r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var ev api.RecoveryWitness
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ev) != nil {
		http.Error(w, "no evidence to tamper with", http.StatusBadGateway)
		return
	}
	tamper(&ev)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ev)
}

func (f *witnessFront) set(fn func(*api.RecoveryWitness)) { f.mu.Lock(); f.tamper = fn; f.mu.Unlock() }

// witnessWorld is a world whose server publishes its log every 10 ms and
// submits each checkpoint to one witness (a testWitness at witClock's
// time, or the world's clock when separate is false), behind a
// witnessFront; policy is the witness policy the devices are given.
func witnessWorld(t *testing.T, separate bool) (w *world, f *witnessFront, witClock *testkit.Clock, policy string) {
	w, f, witClock, policy, _ = witnessWorldW(t, separate)
	return
}

func witnessWorldW(t *testing.T, separate bool) (w *world, f *witnessFront, witClock *testkit.Clock, policy string, tw *testWitness) {
	t.Helper()
	tw = &testWitness{cos: translogtest.NewCosigner(t, "witness.example")}
	ws := httptest.NewServer(tw)
	t.Cleanup(ws.Close)
	w = newWorldWith(t, func(c *command.Config) {
		s, err := command.LogSigner(context.Background(), *c)
		if err != nil {
			t.Fatal(err)
		}
		wit, err := translog.NewWitness(ws.URL, tw.cos.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.LogSigner, c.LogInterval, c.LogWitnesses = s, 10*time.Millisecond, []*translog.Witness{wit}
	})
	witClock = w.clock
	if separate {
		witClock = testkit.NewClock(w.clock.Now())
	}
	tw.mu.Lock()
	tw.clock = witClock
	tw.mu.Unlock()
	u, _ := url.Parse(w.url)
	f = &witnessFront{proxy: httputil.NewSingleHostReverseProxy(u), back: w.url}
	w.front(t, f)
	return w, f, witClock, "witness W " + tw.cos.Key + "\nquorum W\n", tw
}

// witnessedAgent opens a device that requires the witness policy; the
// maximum checkpoint age is a day, so that a server clock run ahead of
// the witness's is refused by the recovery check, not as staleness.
func witnessedAgent(t *testing.T, w *world, name, policy string) *device.Agent {
	t.Helper()
	o := w.softOptions(t.TempDir()+"/"+name, "pw "+name)
	o.LogWait = 2 * time.Second
	a := w.open(o)
	testkit.NoErr(t, a.ConfigureLog(device.LogConfig{Policy: policy, MaxAge: 24 * time.Hour}))
	return a
}

// waitWitnessed polls the server until it serves the evidence of rid.
func waitWitnessed(t *testing.T, w *world, rid string) *api.RecoveryWitness {
	t.Helper()
	cl := testkit.Must(client.New(w.url, nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, err := cl.RecoveryWitness(context.Background(), rid)
		if err == nil {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery %s not witnessed: %v", rid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecoveryWaitsOnWitnessedTime: the server's clock (and so the link
// times it accepts and Command's own waiting period) runs two hours ahead
// of the witness's, as a server colluding with the holder of a leaked
// recovery code would date things: the recover link is appended and
// chain.Apply accepts it by link times, but the account's device refuses
// it on witnessed time, naming the request's witnessed time, the
// allowed completion time and the recover checkpoint's witnessed time;
// so does a correspondent, and the recovered device is in neither's
// device list.
func TestRecoveryWaitsOnWitnessedTime(t *testing.T) {
	ctx := context.Background()
	w, _, witClock, policy := witnessWorld(t, true)
	a := witnessedAgent(t, w, "a", policy)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	carol := witnessedAgent(t, w, "carol", policy)
	testkit.Must(carol.Init(ctx, device.InitOptions{Account: "carol", DeviceName: "c"}))
	testkit.Must(carol.Sync(ctx, res.Account))

	thief := witnessedAgent(t, w, "thief", policy)
	rr := testkit.Must(thief.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "thief", Code: res.RecoveryCode.Reveal()}))
	ev := waitWitnessed(t, w, rr.RecoveryID)
	t.Logf("request witnessed at %s (server says not before %s)", ev.WitnessedAt, ev.NotBefore)

	// The device shows the pending recovery with its witnessed times.
	st := testkit.Must(a.Status(ctx, true))
	if st.Recovery == nil || !st.Recovery.Witnessed || !st.Recovery.WitnessedAt.Equal(witClock.Now()) ||
		!st.Recovery.WitnessedNotBefore.Equal(witClock.Now().Add(time.Hour)) {
		t.Fatalf("status shows %+v; want the request witnessed at %s, not before %s", st.Recovery, witClock.Now(), witClock.Now().Add(time.Hour))
	}

	// The server (and the thief) jump two hours; the witness does not.
	w.clock.Add(2 * time.Hour)
	witClock.Add(time.Minute)
	err := thief.Finish(ctx)
	t.Logf("the thief's own finish: %v", err)
	_, err = a.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrRecoveryNotWitnessed) || !strings.Contains(err.Error(), "first witnessed at "+rfc(ev.WitnessedAt)) ||
		!strings.Contains(err.Error(), "completion allowed after "+rfc(ev.WitnessedAt.Add(time.Hour))) ||
		!strings.Contains(err.Error(), "witnessed at "+rfc(witClock.Now())) {
		t.Fatalf("the owner's sync of a recover early by witnessed time: %v", err)
	}
	t.Logf("refused: %v", err)
	// The checkpoint that includes the early recover is kept as evidence.
	if kept := testkit.Must(a.RefusedCheckpoints()); len(kept) == 0 || !strings.Contains(kept[len(kept)-1].Reason, "first witnessed at "+rfc(ev.WitnessedAt)) ||
		!strings.Contains(string(kept[len(kept)-1].Checkpoint), "— witness.example ") {
		t.Fatalf("evidence kept: %+v", kept)
	}
	if off := testkit.Must(a.Status(ctx, false)); off.Head.Seq != 1 || off.Recovery == nil || off.Recovery.RequestID != rr.RecoveryID {
		t.Fatalf("the owner's stored chain after the refusal: head %v, recovery %+v; want the request (seq 1) still pending", off.Head, off.Recovery)
	}
	_, err = carol.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrRecoveryNotWitnessed) {
		t.Fatalf("the correspondent's sync: %v", err)
	}
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// TestRecoveryWitnessEvidence: with one clock for server, devices and
// witness (a dev waiting period of a minute) and the request witnessed
// half a minute after Command accepted it, the recovering device waits
// for the witnessed end of the waiting period (not the link times'),
// then completes; a device
// syncing the account refuses the recover link while the server's
// evidence is a checkpoint without the witness's cosignature, or points
// at another leaf than the request, and accepts it with the honest
// evidence.
func TestRecoveryWitnessEvidence(t *testing.T) {
	ctx := context.Background()
	w, f, _, policy, tw := witnessWorldW(t, false)
	a := witnessedAgent(t, w, "a", policy)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a", RecoveryDelay: time.Minute, SetRecoveryDelay: true}))
	c := witnessedAgent(t, w, "c", policy)
	tw.setDown(true) // the request is witnessed half a minute late
	rr := testkit.Must(c.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "c", Code: res.RecoveryCode.Reveal()}))
	time.Sleep(100 * time.Millisecond)
	w.clock.Add(30 * time.Second)
	tw.setDown(false)
	ev := waitWitnessed(t, w, rr.RecoveryID)
	w.clock.Add(31 * time.Second) // past the link times' end, not the witnessed one
	if err := c.Finish(ctx); !errors.Is(err, device.ErrWaiting) || !strings.Contains(err.Error(), "the recovery request was first witnessed at "+rfc(ev.WitnessedAt)) ||
		!strings.Contains(err.Error(), "completion allowed after "+rfc(ev.WitnessedAt.Add(time.Minute))+" by witnessed time") {
		t.Fatalf("finish before the witnessed end of the waiting period: %v", err)
	}
	w.clock.Add(35 * time.Second) // Command adds a margin of 2 s for the witnesses' clocks
	testkit.NoErr(t, c.Finish(ctx))
	if st := testkit.Must(c.Status(ctx, true)); st.State != device.StatusActive {
		t.Fatalf("the recovered device: %s", st.State)
	}

	for _, tc := range []struct {
		name   string
		tamper func(*api.RecoveryWitness)
		want   string
	}{
		{"no quorum", func(e *api.RecoveryWitness) {
			e.Checkpoint = e.Checkpoint[:strings.Index(e.Checkpoint, "— witness.example")]
		}, "lacks this device's witness quorum"},
		{"another leaf", func(e *api.RecoveryWitness) { e.LeafIndex = 0 }, "the request is not leaf 0"},
		{"leaf beyond the checkpoint", func(e *api.RecoveryWitness) { e.LeafIndex = 1 << 20 }, "is not in its checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.set(tc.tamper)
			defer f.set(nil)
			_, err := a.Sync(ctx, res.Account)
			if !errors.Is(err, client.ErrRecoveryNotWitnessed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("evidence %s: %v, want ErrRecoveryNotWitnessed saying %q", tc.name, err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	if _, devs, _ := check3(a.Devices(ctx, "")); len(devs) != 2 {
		t.Fatalf("with the honest evidence: %d devices, want 2", len(devs))
	}
}

// TestCommandHoldsRecoverUntilWitnessed: the witness is down when the
// request is made and cosigns half an hour later. By Command's clock and
// the link times the waiting period (an hour) has passed an hour after
// the request, but by witnessed time it has not: Command refuses the
// recover link of a device that does not check witnesses itself, naming
// the witnessed time and when completion is allowed, and accepts it once
// that time has passed.
func TestCommandHoldsRecoverUntilWitnessed(t *testing.T) {
	ctx := context.Background()
	w, _, _, policy, tw := witnessWorldW(t, false)
	a := witnessedAgent(t, w, "a", policy)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a", RecoveryDelay: time.Hour, SetRecoveryDelay: true}))
	tw.setDown(true)
	c := w.agent("c") // no witness policy: only Command holds it
	rr := testkit.Must(c.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "c", Code: res.RecoveryCode.Reveal()}))
	time.Sleep(100 * time.Millisecond) // integrated, not witnessed
	w.clock.Add(30 * time.Minute)
	tw.setDown(false)
	ev := waitWitnessed(t, w, rr.RecoveryID)
	if !ev.WitnessedAt.Equal(w.clock.Now()) {
		t.Fatalf("witnessed at %s, want %s (when the witness came back)", ev.WitnessedAt, w.clock.Now())
	}
	w.clock.Add(31 * time.Minute)
	err := c.Finish(ctx)
	if !errors.Is(err, device.ErrWaiting) || !strings.Contains(err.Error(), "was first witnessed at "+rfc(ev.WitnessedAt)+"; completion allowed after "+rfc(ev.WitnessedAt.Add(time.Hour))+" by witnessed time") {
		t.Fatalf("completing an hour after the request, half an hour after it was witnessed: %v", err)
	}
	t.Logf("held: %v", err)
	w.clock.Add(30 * time.Minute)
	testkit.NoErr(t, c.Finish(ctx))
	if _, devs, _ := check3(a.Devices(ctx, "")); len(devs) != 2 {
		t.Fatalf("after the witnessed waiting period: %d devices, want 2", len(devs))
	}
}
