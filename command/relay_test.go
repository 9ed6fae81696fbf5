package command

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

type env1 struct {
	AccountID  string `json:"account_id"`
	DeviceID   string `json:"device_id"`
	Ciphertext string `json:"ciphertext"`
}

func envTo(a *tacct, d *tdev, msg string) env1 {
	return env1{AccountID: a.id, DeviceID: d.id.String(), Ciphertext: enc64([]byte(msg))}
}

func (a *tacct) fetch(d *tdev) []api.Envelope {
	a.e.t.Helper()
	r := a.e.want(a.e.do("GET", "/v1/messages?limit=1000", a.token(d), nil), 200, "")
	var body struct {
		Envelopes []api.Envelope `json:"envelopes"`
	}
	r.decode(a.e.t, &body)
	return body.Envelopes
}

func TestRelayEligibility(t *testing.T) {
	e := newEnv(t)
	a, A1, A2, b, B1, B2 := e.aliceAndBob()

	// A1 sends to bob's devices and to its own other device (message sync).
	r := e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "envelopes": []env1{
		envTo(b, B1, "hi B1"), envTo(b, B2, "hi B2"), envTo(a, A2, "sync A2"),
		{AccountID: strings.Repeat("0", 64), DeviceID: B1.id.String(), Ciphertext: enc64([]byte("x"))},
		envTo(b, newDev("bob/ghost"), "ghost"),
	}}), http.StatusAccepted, "")
	var res struct {
		Accepted []string       `json:"accepted"`
		Rejected []api.Rejected `json:"rejected"`
	}
	r.decode(t, &res)
	if len(res.Accepted) != 3 || len(res.Rejected) != 2 || res.Rejected[0].Reason != "unknown_account" || res.Rejected[1].Reason != "not_active" {
		t.Fatalf("send: %s", r.body)
	}
	got := b.fetch(B1)
	if len(got) != 1 || got[0].FromAccount != a.id || got[0].FromDevice != A1.id.String() || got[0].Kind != "message" || string(got[0].Ciphertext) != "hi B1" || !got[0].SentAt.Equal(t0) {
		t.Fatalf("B1 got %+v", got)
	}
	if got := a.fetch(A2); len(got) != 1 {
		t.Fatalf("A2 got %d", len(got))
	}
	// Acknowledged envelopes are gone; a device cannot acknowledge another's.
	b2 := b.fetch(B2)
	e.want(e.do("POST", "/v1/messages/ack", b.token(B1), map[string]any{"ids": []string{got[0].ID, b2[0].ID}}), 200, "")
	if len(b.fetch(B1)) != 0 || len(b.fetch(B2)) != 1 {
		t.Fatal("acknowledgement deleted the wrong envelopes")
	}
	e.want(e.do("POST", "/v1/messages/ack", b.token(B1), map[string]any{"ids": []string{"abc"}}), 400, "bad_request")

	// Calls carry a call id.
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "call", "call_id": "call-1", "envelopes": []env1{envTo(b, B1, "call key")}}), http.StatusAccepted, "")
	if got := b.fetch(B1); len(got) != 1 || got[0].Kind != "call" || got[0].CallID != "call-1" {
		t.Fatalf("call envelope: %+v", got)
	}
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "call", "envelopes": []env1{envTo(b, B1, "x")}}), 400, "bad_request")
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "call", "call_id": "bad id!", "envelopes": []env1{envTo(b, B1, "x")}}), 400, "bad_request")
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "call_id": "c", "envelopes": []env1{envTo(b, B1, "x")}}), 400, "bad_request")
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "fax", "envelopes": []env1{envTo(b, B1, "x")}}), 400, "bad_request")
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "envelopes": []env1{}}), 400, "bad_request")
	big := env1{AccountID: b.id, DeviceID: B1.id.String(), Ciphertext: enc64(make([]byte, MaxCiphertext+1))}
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "envelopes": []env1{big}}), 413, "too_large")
	many := make([]env1, MaxEnvelopes+1)
	for i := range many {
		many[i] = envTo(b, B1, "x")
	}
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "envelopes": many}), 400, "bad_request")
}

// After a revocation is accepted, the revoked device receives nothing:
// its queue was deleted in the revocation's transaction, new envelopes for
// it are rejected, and its own requests are refused.
func TestRevocationCutsRelay(t *testing.T) { storetest.Engines(t, testRevocationCutsRelay) }

func testRevocationCutsRelay(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	A, B := newDev("alice/A"), newDev("alice/B")
	S := newDev("sam/S")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	a.add(B, A)
	s := e.newAccount("sam", S, chain.DefaultPolicy())
	tokB := a.token(B)
	for i := 0; i < 5; i++ {
		e.want(e.do("POST", "/v1/messages", s.token(S), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, A, "to A"), envTo(a, B, "to B")}}), http.StatusAccepted, "")
	}
	if n := len(a.fetch(B)); n != 5 {
		t.Fatalf("B has %d queued", n)
	}
	e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	a.sync()
	left, err := e.srv.store.Envelopes(t.Context(), a.id, B.id.String(), 1000)
	testkit.NoErr(t, err)
	if len(left) != 0 {
		t.Fatalf("%d envelopes of the revoked device survived its revocation", len(left))
	}
	if n := len(a.fetch(A)); n != 5 {
		t.Fatalf("A lost envelopes: %d", n)
	}
	r := e.want(e.do("POST", "/v1/messages", s.token(S), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, A, "after"), envTo(a, B, "after")}}), http.StatusAccepted, "")
	if rej := r.m["rejected"].([]any); len(rej) != 1 || rej[0].(map[string]any)["reason"] != "not_active" {
		t.Fatalf("send after revocation: %s", r.body)
	}
	e.want(e.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
	e.want(e.do("POST", "/v1/messages", tokB, map[string]any{"kind": "message", "envelopes": []env1{envTo(s, S, "from B")}}), 401, "unauthorized")
	left, _ = e.srv.store.Envelopes(t.Context(), a.id, B.id.String(), 1000)
	if len(left) != 0 {
		t.Fatalf("%d envelopes for the revoked device", len(left))
	}
}

// Sends racing with a revocation: whatever order they commit in, no
// envelope for the revoked device is queued once the revocation is in.
func TestRevocationRacesSends(t *testing.T) { storetest.Engines(t, testRevocationRacesSends) }

func testRevocationRacesSends(t *testing.T, dsn string) {
	e := newEnvDSN(t, dsn)
	a, A, B := e.aliceAB()
	S := newDev("sam/S")
	s := e.newAccount("sam", S, chain.DefaultPolicy())
	tokS := s.token(S)
	a.token(A)
	revoke := a.revokeLink(A, B)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				r := e.do("POST", "/v1/messages", tokS, map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "race")}})
				if r.code != http.StatusAccepted {
					t.Errorf("send: %d %s", r.code, r.body)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if r := a.post(A, revoke); r.code != http.StatusCreated {
			t.Errorf("revoke: %d %s", r.code, r.body)
		}
	}()
	wg.Wait()
	left, err := e.srv.store.Envelopes(t.Context(), a.id, B.id.String(), 1000)
	testkit.NoErr(t, err)
	if len(left) != 0 {
		t.Fatalf("%d envelopes queued for B after its revocation", len(left))
	}
}
