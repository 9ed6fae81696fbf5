package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// chainServer answers GET …/chain with answer(query) and records the
// queries it was sent.
type chainServer struct {
	mu      sync.Mutex
	queries []string
	answer  func(q api.ChainQuery) (int, any)
}

func (s *chainServer) start(t *testing.T) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.RawQuery)
		s.mu.Unlock()
		q := api.ChainQuery{After: -1, Hash: r.URL.Query().Get("hash")}
		if a := r.URL.Query().Get("after"); a != "" {
			json.Unmarshal([]byte(a), &q.After)
		}
		status, body := s.answer(q)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *chainServer) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

func answerOf(acct chain.AccountID, head chain.Head, links [][]byte) api.Chain {
	return api.Chain{AccountID: hex.EncodeToString(acct[:]), Head: api.HeadOf(head), Links: links}
}

// A client that verified a head asks only for the links after it, naming
// the head's hash; the server's links are still verified one by one
// against that state, so a server that skips, reorders or repeats links,
// sends another account's or sends the whole chain again is refused, and
// a 409 not_on_chain is a fork or rollback alarm (one request, no silent
// refetch of the whole chain). Nothing unverified is stored.
func TestSyncFetchesOnlyAfterVerifiedHead(t *testing.T) {
	links, states := testChain(t, 9)
	other, otherStates := testChain(t, 8)
	acct := states[0].Account()
	now := t0.Add(time.Minute)
	ctx := context.Background()
	full := raw(links)
	honest := func(q api.ChainQuery) (int, any) {
		return http.StatusOK, answerOf(acct, states[2].Head(), full[q.After+1:])
	}

	// The honest refresh: one request for the links after seq 0 with the
	// genesis hash; two links stored.
	s := &chainServer{answer: honest}
	c := s.start(t)
	st := memStore{acct: full[:1]}
	got, err := c.SyncFrom(ctx, acct, st, states[0], now)
	if err != nil || got.Head() != states[2].Head() {
		t.Fatalf("honest refresh: %v", err)
	}
	want := "after=0&hash=" + states[0].Head().Hash.String()
	if q := s.sent(); len(q) != 1 || q[0] != want {
		t.Fatalf("queries %q, want [%q]", q, want)
	}
	if len(st[acct]) != 3 {
		t.Fatalf("stored %d links, want 3", len(st[acct]))
	}
	// A refresh at an unchanged head fetches no link.
	s.answer = func(q api.ChainQuery) (int, any) {
		if q.After != 2 {
			t.Errorf("refresh after seq %d, want 2", q.After)
		}
		return honest(q)
	}
	if _, err := c.SyncFrom(ctx, acct, st, got, now); err != nil || len(st[acct]) != 3 {
		t.Fatalf("refresh at the head: %v, %d links stored", err, len(st[acct]))
	}

	notOn := func(head chain.Head) func(api.ChainQuery) (int, any) {
		return func(api.ChainQuery) (int, any) {
			h := api.HeadOf(head)
			return http.StatusConflict, api.Error{Error: api.ErrorDetail{Code: api.CodeNotOnChain, Message: "not on the chain", Head: &h}, Head: &h}
		}
	}
	forgedHead := chain.Head{Seq: 2, Hash: chain.Hash{0xee}}
	cases := []struct {
		desc   string
		base   int // the seq this device verified
		answer func(api.ChainQuery) (int, any)
		want   error
	}{
		{"409 not_on_chain, a longer chain", 1, notOn(forgedHead), ErrFork},
		{"409 not_on_chain, a shorter chain", 1, notOn(chain.Head{Seq: 0, Hash: states[0].Head().Hash}), ErrRollback},
		{"skips a link", 0, func(api.ChainQuery) (int, any) { return http.StatusOK, answerOf(acct, states[2].Head(), full[2:]) }, ErrFork},
		{"reorders the links", 0, func(api.ChainQuery) (int, any) {
			return http.StatusOK, answerOf(acct, states[2].Head(), [][]byte{full[2], full[1]})
		}, ErrFork},
		{"repeats the verified head", 0, func(api.ChainQuery) (int, any) { return http.StatusOK, answerOf(acct, states[2].Head(), full[0:]) }, ErrFork},
		{"another account's links", 0, func(api.ChainQuery) (int, any) {
			return http.StatusOK, answerOf(acct, otherStates[2].Head(), raw(other[1:]))
		}, ErrFork},
		{"answers for another account", 0, func(api.ChainQuery) (int, any) {
			return http.StatusOK, answerOf(otherStates[0].Account(), otherStates[2].Head(), raw(other[1:]))
		}, ErrFork},
		{"claims a head it did not send", 0, func(api.ChainQuery) (int, any) { return http.StatusOK, answerOf(acct, states[2].Head(), full[1:2]) }, ErrFork},
		{"no links, an older head", 1, func(api.ChainQuery) (int, any) { return http.StatusOK, answerOf(acct, states[0].Head(), nil) }, ErrRollback},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			s := &chainServer{answer: tc.answer}
			c := s.start(t)
			st := memStore{acct: full[:tc.base+1]}
			_, err := c.SyncFrom(ctx, acct, st, states[tc.base], now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrConflict) {
				t.Fatalf("a fork alarm reads as a retryable conflict: %v", err)
			}
			if q := s.sent(); len(q) != 1 {
				t.Fatalf("%d requests (%q), want 1: the client refetched", len(q), q)
			}
			if len(st[acct]) != tc.base+1 {
				t.Fatalf("%d links stored, want the %d verified before", len(st[acct]), tc.base+1)
			}
		})
	}
}
