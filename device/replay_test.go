package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// replayRelay sits in front of the real server as a relay that keeps
// copies: it records every envelope it delivers and, when told, hands
// recorded ones out again with the next fetch.
type replayRelay struct {
	mu      sync.Mutex
	backend *url.URL
	seen    []client.Envelope
	replay  []client.Envelope
	damage  atomic.Bool // deliver copies whose signature no longer verifies
}

func (h *replayRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, body, ok := testkit.Forward(w, r, h.backend)
	if !ok {
		return
	}
	if r.Method == "GET" && r.URL.Path == "/v1/messages" && resp.StatusCode == 200 {
		var v struct {
			Envelopes []client.Envelope `json:"envelopes"`
		}
		json.Unmarshal(body, &v)
		h.mu.Lock()
		h.seen = append(h.seen, v.Envelopes...)
		if h.damage.Load() {
			for i := range v.Envelopes {
				raw := bytes.Clone(v.Envelopes[i].Ciphertext) // seen keeps the original
				raw[len(raw)-1] ^= 1                          // inside the signature: it still parses
				v.Envelopes[i].Ciphertext = raw
			}
		}
		v.Envelopes = append(v.Envelopes, h.replay...)
		h.replay = nil
		h.mu.Unlock()
		body, _ = json.Marshal(v)
	}
	testkit.Reply(w, resp, body)
}

// redeliver queues every envelope the relay delivered so far for the next
// fetch.
func (h *replayRelay) redeliver() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.replay = append([]client.Envelope(nil), h.seen...)
	return len(h.replay)
}

func replayWorld(t *testing.T) (*world, *replayRelay) {
	w := newWorld(t)
	rr := &replayRelay{backend: w.serverURL()}
	w.front(t, rr)
	return w, rr
}

// replayOpen opens (or reopens) the agent at home.
func replayOpen(t *testing.T, w *world, home string) *device.Agent {
	t.Helper()
	a, err := device.Open(w.softOptions(home, "pw replay"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func skippedWith(res *device.ReceiveResult, target error) bool {
	for _, s := range res.Skipped {
		if strings.Contains(s.Reason, strings.TrimPrefix(target.Error(), "device: ")) {
			return true
		}
	}
	return false
}

// A relay that delivers an acknowledged message again — right away, after
// the receiving device restarted, or a month later — does not get it shown
// as a new message: it is refused as a replay, or as sent outside the
// replay window.
func TestReplayedMessageRefused(t *testing.T) {
	ctx := context.Background()
	w, rr := replayWorld(t)
	home := filepath.Join(t.TempDir(), "a")
	a := replayOpen(t, w, home)
	bob := w.agent("bob")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "xena"}))
	testkit.Must(bob.Init(ctx, device.InitOptions{Account: "yuri"}))
	testkit.Must(bob.Send(ctx, "xena", []byte("pay 10 to carol")))
	got := testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "pay 10 to carol" {
		t.Fatalf("first delivery: %+v", got)
	}

	// Again at once.
	if rr.redeliver() != 1 {
		t.Fatal("the relay recorded no envelope")
	}
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 0 || !skippedWith(got, device.ErrReplay) {
		t.Fatalf("a re-delivered envelope: %+v", got)
	}

	// After a restart: the set is in agent.db.
	a.Close()
	a = replayOpen(t, w, home)
	defer a.Close()
	rr.redeliver()
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 0 || !skippedWith(got, device.ErrReplay) {
		t.Fatalf("re-delivered after a restart: %+v", got)
	}

	// A month later the id may be forgotten, but the send time is
	// outside the window.
	w.clock.Add(31 * 24 * time.Hour)
	rr.redeliver()
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 0 || !skippedWith(got, device.ErrOutsideWindow) {
		t.Fatalf("re-delivered a month later: %+v", got)
	}

	// A fresh message still opens.
	testkit.Must(bob.Send(ctx, "xena", []byte("new")))
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "new" {
		t.Fatalf("a new message after the replays: %+v", got)
	}
}

// A message that fails to open is not remembered: the genuine envelope
// with the same id, delivered after a damaged copy was refused, opens.
func TestFailedEnvelopeNotMarkedSeen(t *testing.T) {
	ctx := context.Background()
	w, rr := replayWorld(t)
	a, bob := w.agent("a"), w.agent("bob")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "zed"}))
	testkit.Must(bob.Init(ctx, device.InitOptions{Account: "abe"}))
	testkit.Must(bob.Send(ctx, "zed", []byte("hello")))
	rr.damage.Store(true)
	got := testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 0 || len(got.Skipped) != 1 || skippedWith(got, device.ErrReplay) {
		t.Fatalf("a damaged copy: %+v", got)
	}
	rr.damage.Store(false)
	rr.redeliver() // the genuine envelope, as the server first held it
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "hello" {
		t.Fatalf("the genuine envelope after a damaged copy of it: %+v", got)
	}
}

// A call invitation delivered again after the call was accepted is
// refused: the call id is remembered with the call's key.
func TestReplayedCallRefused(t *testing.T) {
	ctx := context.Background()
	w, rr := replayWorld(t)
	a, b := w.agent("a"), w.agent("b")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "bea"}))
	testkit.Must(b.Init(ctx, device.InitOptions{Account: "cal"}))
	call := testkit.Must(a.Call(ctx, "cal", time.Hour))
	got := testkit.Must(b.Receive(ctx))
	if len(got.Calls) != 1 || got.Calls[0] != call.CallID {
		t.Fatalf("invitation: %+v", got)
	}
	// Delivered twice before acceptance: refused, the first is waiting.
	rr.redeliver()
	got = testkit.Must(b.Receive(ctx))
	if len(got.Calls) != 0 || !skippedWith(got, device.ErrReplay) {
		t.Fatalf("a second copy of a waiting invitation: %+v", got)
	}
	fp := testkit.Must(b.AcceptCall(ctx, call.CallID))
	if fp != call.Fingerprint {
		t.Fatalf("fingerprints %s and %s", fp, call.Fingerprint)
	}
	rr.redeliver()
	got = testkit.Must(b.Receive(ctx))
	if len(got.Calls) != 0 || !skippedWith(got, device.ErrReplay) {
		t.Fatalf("an accepted call's invitation again: %+v", got)
	}
	if _, err := b.AcceptCall(ctx, call.CallID); err == nil {
		t.Fatal("accepted the same call twice")
	}
}
