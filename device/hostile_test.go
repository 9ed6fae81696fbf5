package device_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
)

// hostile sits in front of the real server and rewrites chain answers the
// way a compromised server (or database) would.
type hostile struct {
	mu      sync.Mutex
	mode    string // "", "forge", "rollback", "fork", "unavailable"
	forged  []byte
	target  string         // unavailable: the account whose chain fails
	fetches map[string]int // GET …/chain requests per account path
	backend *url.URL
}

// hostileFront puts a hostile server in front of w's server; the agents
// made after it talk to the hostile one.
func (w *world) hostileFront(t *testing.T) *hostile {
	hs := &hostile{backend: w.serverURL()}
	w.front(t, hs)
	return hs
}

// set switches the lie told from now on (mode "" for honest answers);
// target is the account whose chain fails in mode "unavailable".
func (h *hostile) set(mode, target string) {
	h.mu.Lock()
	h.mode, h.target = mode, target
	h.mu.Unlock()
}

func (h *hostile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, body, ok := testkit.Forward(w, r, h.backend)
	if !ok {
		return
	}
	h.mu.Lock()
	mode, forged := h.mode, h.forged
	if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/chain") {
		if h.fetches == nil {
			h.fetches = map[string]int{}
		}
		h.fetches[r.URL.Path]++
	}
	h.mu.Unlock()
	if mode == "false-revoked" && strings.HasPrefix(r.URL.Path, "/v1/messages") {
		http.Error(w, `{"error":{"code":"device_revoked","message":"this device is revoked"}}`, http.StatusForbidden)
		return
	}
	if mode == "unavailable" && r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/chain") && strings.Contains(r.URL.Path, h.target) {
		http.Error(w, `{"error":{"code":"unavailable","message":"database down"}}`, http.StatusServiceUnavailable)
		return
	}
	if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/chain") && resp.StatusCode == 200 && mode != "" {
		var v struct {
			AccountID string         `json:"account_id"`
			Head      map[string]any `json:"head"`
			Links     []string       `json:"links"`
		}
		json.Unmarshal(body, &v)
		switch mode {
		case "forge", "fork":
			l, _ := chain.ParseLink(forged)
			if r.URL.Query().Get("after") != "" && mode == "fork" {
				// Pretend the forged link sits at the device's head.
				v.Links = []string{}
				v.Head = map[string]any{"seq": l.Seq() - 1, "hash": strings.Repeat("ab", 32)}
			} else {
				v.Links = append(v.Links, base64.StdEncoding.EncodeToString(forged))
				v.Head = map[string]any{"seq": l.Seq(), "hash": l.Hash().String()}
			}
		case "rollback":
			v.Links = nil
			v.Head = map[string]any{"seq": 0, "hash": v.AccountID}
		}
		body, _ = json.Marshal(v)
	}
	testkit.Reply(w, resp, body)
}

// A server that lies about the chain cannot make a device trust a ghost
// device, roll it back to an older head, or fork it.
func TestHostileServer(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	hs := w.hostileFront(t)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "hal"}))
	enroll(t, ctx, a, b, "hal")

	// The forged link: a ghost device approved by nobody the account trusts.
	cl := testkit.Must(client.New(w.url, nil))
	view := testkit.Must(cl.Chain(ctx, res.Account, -1))
	links := testkit.Must(chain.ParseChain(view.Links))
	st := testkit.Must(chain.VerifyChain(nil, links, time.Now()))
	gk, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{0x47}, hybrid.SeedSize))
	ghost := chain.Device{ID: chain.DeviceID{0x47}, Name: "ghost", Identity: gk.Public(),
		KEM: append([]byte(nil), links[0].Body().(*chain.Genesis).Device.KEM...), Level: chain.LevelSoftware}
	var n [chain.NonceSize]byte
	d := testkit.Must(chain.NewDraft(st, time.Now(), &chain.AddDevice{Device: ghost, Nonce: n, PairingHash: chain.PairingHash(n, "x")}))
	d.Sign(chain.RoleSubject, gk)
	d.SignDevice(ghost.ID, gk)
	hs.forged = testkit.Must(d.Link()).Bytes()

	// Both devices verify the honest chain (head at seq 1) first.
	for _, ag := range []*device.Agent{a, b} {
		if _, devs, head, err := ag.Devices(ctx, ""); err != nil || len(devs) != 2 || head.Seq != 1 {
			t.Fatalf("honest chain: %v %v %v", devs, head, err)
		}
	}
	for _, c := range []struct {
		mode string
		want error
	}{
		{"forge", chain.ErrSignerUnknown},
		{"rollback", client.ErrRollback},
		{"fork", client.ErrFork},
	} {
		t.Run(c.mode, func(t *testing.T) {
			hs.set(c.mode, "")
			defer hs.set("", "")
			for name, ag := range map[string]*device.Agent{"a": a, "b": b} {
				_, devs, _, err := ag.Devices(ctx, "")
				if !errors.Is(err, c.want) {
					t.Fatalf("device %s: err = %v, want %v (devices %v)", name, err, c.want, devs)
				}
				if _, err := ag.Send(ctx, "hal", []byte("x")); err == nil {
					t.Fatalf("device %s sent over a %s chain", name, c.mode)
				}
			}
		})
	}
	// Honest again: nothing was stored from the lies.
	_, devs, _, err := a.Devices(ctx, "")
	if err != nil || len(devs) != 2 {
		t.Fatalf("after the hostile answers: %v %v", devs, err)
	}
}

// A message whose sender cannot be verified right now (the server cannot
// serve the sender's chain) is left queued, not dropped: the next receive
// opens it.
func TestReceiveDefersOnPassingFailure(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	hs := w.hostileFront(t)
	a, bob := w.agent("a"), w.agent("bob")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "sam"}))
	br := testkit.Must(bob.Init(ctx, device.InitOptions{Account: "tom"}))
	testkit.Must(bob.Send(ctx, "sam", []byte("are you there?")))
	hs.set("unavailable", hex.EncodeToString(br.Account[:]))
	got := testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 0 || len(got.Deferred) != 1 || len(got.Skipped) != 0 {
		t.Fatalf("while the sender's chain is unreachable: %+v", got)
	}
	hs.set("", "")
	got = testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 1 || string(got.Messages[0].Body) != "are you there?" {
		t.Fatalf("after the failure passed: %+v", got)
	}
}

// A receive verifies each sender's chain once, however many envelopes the
// sender sent (not one server round trip and verification per envelope).
func TestReceiveSyncsEachSenderOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	hs := w.hostileFront(t)
	a, bob := w.agent("a"), w.agent("bob")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "uma"}))
	br := testkit.Must(bob.Init(ctx, device.InitOptions{Account: "val"}))
	for i := 0; i < 3; i++ {
		testkit.Must(bob.Send(ctx, "uma", []byte("m")))
	}
	path := "/v1/accounts/" + hex.EncodeToString(br.Account[:]) + "/chain"
	hs.mu.Lock()
	hs.fetches = nil
	hs.mu.Unlock()
	got := testkit.Must(a.Receive(ctx))
	if len(got.Messages) != 3 {
		t.Fatalf("received %d messages", len(got.Messages))
	}
	hs.mu.Lock()
	n := hs.fetches[path]
	hs.mu.Unlock()
	if n != 1 {
		t.Fatalf("the sender's chain was fetched %d times for 3 envelopes, want 1", n)
	}
}

// A server that claims an active device is revoked cannot make it destroy
// its keys: the device acts only on its own verified chain.
func TestFalseRevocationDestroysNothing(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	hs := w.hostileFront(t)
	a := w.agent("a")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "wes"}))
	hs.set("false-revoked", "")
	_, err := a.Receive(ctx)
	if err == nil || errors.Is(err, device.ErrRevoked) || !strings.Contains(err.Error(), "still shows it active") {
		t.Fatalf("a false device_revoked: %v", err)
	}
	for _, k := range testkit.Must(a.Keystore().List()) {
		if k.State == lifecycle.Revoked {
			t.Fatalf("key %s revoked on the server's word", k.ID.Short())
		}
	}
	if st := testkit.Must(a.Status(ctx, true)); st.State != device.StatusActive {
		t.Fatalf("device state after a false revocation: %s", st.State)
	}
}
