package device_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// refreshFront sits in front of the server, records the queries of chain
// fetches of one account, and lets a test rewrite the answers to fetches
// made after a verified head.
type refreshFront struct {
	backend *url.URL
	path    string // GET path of the watched account's chain

	mu      sync.Mutex
	queries []string
	lie     func(q url.Values, c *api.Chain) (status int, body any) // nil: honest
}

func (f *refreshFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, body, ok := testkit.Forward(w, r, f.backend)
	if !ok {
		return
	}
	if r.Method != "GET" || r.URL.Path != f.path {
		testkit.Reply(w, resp, body)
		return
	}
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	lie := f.lie
	f.mu.Unlock()
	if lie == nil || r.URL.Query().Get("after") == "" || resp.StatusCode != http.StatusOK {
		testkit.Reply(w, resp, body)
		return
	}
	var c api.Chain
	if err := json.Unmarshal(body, &c); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	status, out := lie(r.URL.Query(), &c)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(out)
}

func (f *refreshFront) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queries
	f.queries = nil
	return q
}

// A device that verified its account's head refreshes with after=SEQ
// &hash=HASH and verifies every new link from that head: a server that
// answers 409 not_on_chain raises a fork or rollback alarm (one request, no
// refetch of the whole chain), and one that skips or reorders the new
// links, sends another account's, or sends the whole chain again is
// refused. Nothing of the lies is stored: the honest refresh afterwards
// still starts from the head verified before.
func TestRefreshAfterVerifiedHeadUnderAttack(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	other := w.agent("z")
	zr := testkit.Must(other.Init(ctx, device.InitOptions{Account: "zoe"}))
	rotate(t, ctx, other)
	zcl := testkit.Must(client.New(w.url, nil))
	zview := testkit.Must(zcl.Chain(ctx, zr.Account, -1)) // another account's links: genesis, rotation

	front := &refreshFront{backend: w.serverURL()}
	w.front(t, front)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "ivy"}))
	front.path = "/v1/accounts/" + hex.EncodeToString(res.Account[:]) + "/chain"
	enroll(t, ctx, a, b, "ivy")
	_, _, h1, err := b.Devices(ctx, "")
	if err != nil || h1.Seq != 1 {
		t.Fatalf("b at the enrollment: head %+v, %v", h1, err)
	}
	rotate(t, ctx, a) // seq 2
	rotate(t, ctx, a) // seq 3
	front.take()

	otherLinks := make([][]byte, len(zview.Links))
	copy(otherLinks, zview.Links)
	notOn := func(h api.Head) any {
		return api.Error{Error: api.ErrorDetail{Code: api.CodeNotOnChain, Message: "not on the chain", Head: &h}, Head: &h}
	}
	for _, c := range []struct {
		desc string
		lie  func(q url.Values, c *api.Chain) (int, any)
		want error
	}{
		{"409 not_on_chain, another head", func(_ url.Values, c *api.Chain) (int, any) {
			return http.StatusConflict, notOn(api.Head{Seq: 3, Hash: strings.Repeat("ee", 32)})
		}, client.ErrFork},
		{"409 not_on_chain, a shorter chain", func(_ url.Values, c *api.Chain) (int, any) {
			return http.StatusConflict, notOn(api.Head{Seq: 0, Hash: c.AccountID})
		}, client.ErrRollback},
		{"skips a link", func(_ url.Values, c *api.Chain) (int, any) {
			c.Links = c.Links[1:]
			return http.StatusOK, c
		}, client.ErrFork},
		{"reorders the links", func(_ url.Values, c *api.Chain) (int, any) {
			c.Links[0], c.Links[1] = c.Links[1], c.Links[0]
			return http.StatusOK, c
		}, client.ErrFork},
		{"another account's links", func(_ url.Values, c *api.Chain) (int, any) {
			c.Links = otherLinks[1:]
			c.Head = api.HeadOf(zview.Head)
			return http.StatusOK, c
		}, client.ErrFork},
		{"the whole chain again", func(_ url.Values, c *api.Chain) (int, any) {
			full := testkit.Must(zcl.Chain(ctx, res.Account, -1))
			c.Links = full.Links
			return http.StatusOK, c
		}, client.ErrFork},
	} {
		t.Run(c.desc, func(t *testing.T) {
			front.mu.Lock()
			front.lie = c.lie
			front.mu.Unlock()
			_, _, _, err := b.Devices(ctx, "")
			front.mu.Lock()
			front.lie = nil
			front.mu.Unlock()
			if !errors.Is(err, c.want) || errors.Is(err, client.ErrConflict) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if q := front.take(); len(q) != 1 {
				t.Fatalf("%d chain fetches (%q), want 1: the device refetched", len(q), q)
			}
		})
	}
	// Honest again: one fetch after the head b verified before the lies.
	_, devs, h3, err := b.Devices(ctx, "")
	if err != nil || h3.Seq != 3 || len(devs) != 2 {
		t.Fatalf("honest refresh: head %+v, %d devices, %v", h3, len(devs), err)
	}
	want := "after=1&hash=" + h1.Hash.String()
	if q := front.take(); len(q) != 1 || q[0] != want {
		t.Fatalf("honest refresh queries %q, want [%q]", q, want)
	}

	// A first contact fetches the whole chain once; the next look at the
	// account asks only for what follows the head it verified.
	c := w.agent("c")
	for i, want := range []string{"", "after=3&hash=" + h3.Hash.String()} {
		if _, devs, h, err := c.Devices(ctx, "ivy"); err != nil || h != h3 || len(devs) != 2 {
			t.Fatalf("contact %d: head %+v, %d devices, %v", i, h, len(devs), err)
		}
		if q := front.take(); len(q) != 1 || q[0] != want {
			t.Fatalf("contact %d: queries %q, want [%q]", i, q, want)
		}
	}
}

func rotate(t *testing.T, ctx context.Context, a *device.Agent) {
	t.Helper()
	if _, _, err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
}
