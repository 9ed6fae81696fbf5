package command

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// lookups returns the state cache's lookup counter for result.
func (e *env) lookups(result string) int {
	e.t.Helper()
	v := e.metric(`enigm_command_state_cache_lookups_total{result="` + result + `"}`)
	n, err := strconv.Atoi(v)
	if err != nil {
		e.t.Fatalf("lookups{result=%q} is %q", result, v)
	}
	return n
}

func (e *env) gauge(name string) int64 {
	e.t.Helper()
	v := e.metric(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.t.Fatalf("%s is %q", name, v)
	}
	return n
}

// The cache stays within its budget by evicting the least recently used
// states; a state just used survives; the estimated bytes it reports are
// those of the entries it holds.
func TestStateCacheEvictsWithinBudget(t *testing.T) {
	e := newEnv(t)
	a := e.newAccount("alice", newDev("alice/A"), chain.DefaultPolicy())
	v := e.srv.cache.get(a.id)
	if v == nil {
		t.Fatal("a new account's state is not cached")
	}
	one := entrySize(a.id, v)
	if one < 8<<10 || one > 64<<10 {
		t.Fatalf("a one-device state is estimated at %d bytes, want 8–64 KiB", one)
	}
	c := newStateCache(10 * one)
	id := func(i int) string { return fmt.Sprintf("%064x", i) }
	for i := range 100 {
		c.put(id(i), v)
		if i >= 1 {
			c.get(id(0)) // the oldest, kept in use
		}
		if n, b := c.stats(); b > c.budget || int64(n)*one != b {
			t.Fatalf("after %d puts: %d entries, %d bytes, budget %d", i+1, n, b, c.budget)
		}
	}
	n, _ := c.stats()
	if n != 10 || c.evictions.Load() != 90 {
		t.Fatalf("%d entries and %d evictions, want 10 and 90", n, c.evictions.Load())
	}
	if c.get(id(0)) == nil || c.get(id(99)) == nil {
		t.Fatal("the entry in use or the newest was evicted")
	}
	if c.get(id(1)) != nil || c.get(id(89)) != nil {
		t.Fatal("an entry used less recently than the last nine survived")
	}
	// A state larger than the whole budget is cached alone.
	small := newStateCache(one / 2)
	small.put(id(1), v)
	small.put(id(2), v)
	if n, _ := small.stats(); n != 1 || small.get(id(2)) == nil {
		t.Fatalf("over a tiny budget: %d entries", n)
	}
	// A newer head is not replaced by an older one.
	nv := &verified{account: v.account, state: v.state}
	nv.account.Head.Seq = 5
	c.put(id(0), nv)
	c.put(id(0), v)
	if got := c.get(id(0)); got.account.Head.Seq != 5 {
		t.Fatalf("an older state replaced the cached newer one (seq %d)", got.account.Head.Seq)
	}
}

// Hits, misses and extensions are counted, and a server whose cache
// holds one state serves every account correctly, verifying again what
// it evicted; the gauges follow the entries.
func TestStateCacheMetrics(t *testing.T) {
	e := newEnv(t)
	A, B := newDev("alice/A"), newDev("bob/A")
	a := e.newAccount("alice", A, chain.DefaultPolicy()) // its sync: one hit
	b := e.newAccount("bob", B, chain.DefaultPolicy())
	if e.lookups("hit") != 2 || e.lookups("miss") != 0 {
		t.Fatalf("after two creations and syncs: hits %d misses %d", e.lookups("hit"), e.lookups("miss"))
	}
	if n := e.gauge("enigm_command_state_cache_entries"); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	if by := e.gauge("enigm_command_state_cache_bytes"); by != entrySize(a.id, e.srv.cache.get(a.id))+entrySize(b.id, e.srv.cache.get(b.id)) {
		t.Fatalf("bytes gauge %d differs from the entries' estimates", by)
	}
	if got := e.gauge("enigm_command_state_cache_budget_bytes"); got != DefaultStateCacheBytes {
		t.Fatalf("budget gauge %d", got)
	}

	// Room for one state: alternating reads evict each other.
	e.srv.cache = newStateCache(entrySize(a.id, e.srv.cache.get(a.id)))
	for range 2 {
		a.sync()
		b.sync()
	}
	if h, m := e.lookups("hit"), e.lookups("miss"); h != 0 || m != 4 {
		t.Fatalf("alternating over a one-entry cache: hits %d misses %d, want 0 and 4", h, m)
	}
	if e.srv.cache.evictions.Load() != 3 {
		t.Fatalf("%d evictions, want 3", e.srv.cache.evictions.Load())
	}
	b.sync()
	if e.lookups("hit") != 1 {
		t.Fatal("a repeated read missed")
	}
	// An append verifies from the cached state and caches the new head.
	e.want(b.post(B, b.rotateKEMLink(B, 1)), http.StatusCreated, "")
	b.sync()
	if b.st.Head().Seq != 1 || e.srv.cache.get(b.id).account.Head.Seq != 1 {
		t.Fatalf("after the append the head is seq %d", b.st.Head().Seq)
	}
}

// Two servers over one store (one SQLite store shared in the process;
// one PostgreSQL database with head announcements): a head appended
// through one is seen by the other. A request that reads the head from
// the database (here a token-authenticated append built on the new head)
// sees it at once; a public read sees it once the announcement arrived
// (at once on SQLite, which has none), verifying only the new link from
// the cached state (an extension), never serving the older cached head.
func TestStateCacheSeesHeadMovedByAnotherInstance(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var e1, e2 *env
			if engine == "sqlite" {
				e1 = newEnv(t)
				e2 = newEnv(t, func(c *Config) { c.Store = e1.srv.store })
			} else {
				dsn := storetest.PostgresDSN(t)
				e1, e2 = newEnvDSN(t, dsn), newEnvDSN(t, dsn)
				e1.waitListening()
				e2.waitListening()
			}
			A := newDev("alice/A")
			a := e1.newAccount("alice", A, chain.DefaultPolicy())
			a2 := a.on(e2)
			a2.sync() // e2 caches seq 0
			a2.token(A)
			if e2.srv.cache.get(a.id) == nil {
				t.Fatal("the second instance did not cache the state")
			}
			e1.want(a.post(A, a.rotateKEMLink(A, 1)), http.StatusCreated, "")
			a.sync()
			// Through the second instance, on the head the first wrote,
			// before any announcement is awaited.
			a2.st = a.st
			e2.want(a2.post(A, a2.rotateKEMLink(A, 2)), http.StatusCreated, "")
			if e2.lookups("extend") != 1 {
				t.Fatalf("extensions %d, want 1", e2.lookups("extend"))
			}
			if engine == "postgres" {
				e1.waitAnnounced(a.id, 2)
			}
			a.sync()
			if a.st.Head().Seq != 2 {
				t.Fatalf("the first instance serves head seq %d, want 2", a.st.Head().Seq)
			}
			if d, _ := a.st.Device(A.id); !bytes.Equal(d.KEM, testKEM("alice/A/rot2")) {
				t.Fatal("the first instance's chain lacks the KEM key rotated through the second")
			}
		})
	}
}

// A link that fails verification, or that verifies but is not stored,
// leaves the cached state as it was: the next read serves the stored head
// and the next valid link is appended on it.
func TestStateCacheNotPoisonedByRejectedLink(t *testing.T) {
	e := newEnv(t)
	A, B := newDev("alice/A"), newDev("alice/B")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	before := e.srv.cache.get(a.id)

	// Signed by a key that is not the device's.
	d := a.draft(&chain.RotateKeys{ID: A.id, KEM: testKEM("alice/A/rot1")})
	testkit.NoErr(t, d.SignDevice(A.id, B.key()))
	e.want(a.post(A, link(t, d)), http.StatusUnprocessableEntity, "chain_rejected")
	// A valid link the database refuses.
	a.token(A)
	st := e.srv.store
	e.srv.store = failingAppend{st}
	e.want(a.post(A, a.rotateKEMLink(A, 1)), http.StatusServiceUnavailable, "unavailable")
	e.srv.store = st
	if got := e.srv.cache.get(a.id); got != before || got.account.Head.Seq != 0 || got.state.Head().Seq != 0 {
		t.Fatalf("a rejected link changed the cached state (seq %d)", got.account.Head.Seq)
	}
	a.sync()
	if a.st.Head().Seq != 0 {
		t.Fatalf("after rejected links the server serves seq %d", a.st.Head().Seq)
	}
	if d, _ := a.st.Device(A.id); !bytes.Equal(d.KEM, A.kem()) {
		t.Fatal("the chain has a KEM key from a rejected link")
	}
	e.want(a.post(A, a.rotateKEMLink(A, 1)), http.StatusCreated, "")
	a.sync()
	if a.st.Head().Seq != 1 {
		t.Fatalf("the valid link after rejected ones: head seq %d", a.st.Head().Seq)
	}
}

// tamperedLinks serves link rows changed behind the server.
type tamperedLinks struct {
	store.Store
	on    atomic.Bool
	other []byte // served as the first row while on
}

func (s *tamperedLinks) Links(ctx context.Context, id string, after int64, limit int) ([]store.Link, error) {
	rows, err := s.Store.Links(ctx, id, after, limit)
	if s.on.Load() && len(rows) > 0 {
		rows[0].Data = s.other
	}
	return rows, err
}

// Links are re-read from the store for every chain response, not kept in
// the cache: a row replaced in the database after its head was verified
// (here: the genesis of another account) is refused and counted, never
// served under the verified head.
func TestStoredLinksAreCheckedAgainstTheVerifiedHead(t *testing.T) {
	inner, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	testkit.NoErr(t, err)
	t.Cleanup(func() { inner.Close() })
	ts := &tamperedLinks{Store: inner}
	e := newEnv(t, func(c *Config) { c.Store = ts })
	a, _ := e.alice()
	o := e.newAccount("other", newDev("other/A"), chain.DefaultPolicy())
	rows, err := inner.Links(context.Background(), o.id, -1, 0)
	testkit.NoErr(t, err)
	ts.other = rows[0].Data
	e.srv.resp = newRespCache(1 << 20) // what newAccount's sync encoded and cached
	ts.on.Store(true)
	for _, path := range []string{"/chain", "/devices", "/chain?after=-1"} {
		e.want(e.do("GET", "/v1/accounts/"+a.id+path, "", nil), http.StatusInternalServerError, "integrity")
	}
	if n := e.metric("enigm_command_chain_integrity_failures_total"); n != "3" {
		t.Fatalf("integrity failures %s, want 3", n)
	}
	ts.on.Store(false)
	a.sync()
}

// linkHash, which checks stored rows without parsing them, is the chain's
// link hash.
func TestLinkHashIsTheChains(t *testing.T) {
	e := newEnv(t)
	a, _ := e.alice()
	rows, err := e.srv.store.Links(context.Background(), a.id, -1, 0)
	testkit.NoErr(t, err)
	l, err := chain.ParseLink(rows[0].Data)
	testkit.NoErr(t, err)
	if linkHash(rows[0].Data) != l.Hash() || l.Hash() != e.srv.cache.get(a.id).hashes[0] {
		t.Fatal("linkHash differs from chain.Link.Hash")
	}
}

// The response cache stays within its budget, serves a response only at
// the head it was made for, and does not cache one larger than the budget.
func TestRespCacheBudgetAndHead(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1000)
	k := func(i int) respKey { return respKey{id: fmt.Sprintf("%064x", i), devices: i%2 == 0} }
	h0, h1 := store.Head{Seq: 0, Hash: "a"}, store.Head{Seq: 1, Hash: "b"}
	one := respSize(k(0), body)
	c := newRespCache(5 * one)
	for i := range 20 {
		c.put(k(i), h0, body)
		if _, b := c.stats(); b > c.budget {
			t.Fatalf("after %d puts %d bytes, budget %d", i+1, b, c.budget)
		}
	}
	if n, _ := c.stats(); n != 5 || c.get(k(19), h0) == nil || c.get(k(14), h0) != nil {
		t.Fatalf("%d entries; the newest kept %v, an old one evicted %v", n, c.get(k(19), h0) != nil, c.get(k(14), h0) == nil)
	}
	if c.get(k(19), h1) != nil {
		t.Fatal("a response was served at another head")
	}
	c.put(k(19), h1, body)
	if c.get(k(19), h0) != nil || c.get(k(19), h1) == nil {
		t.Fatal("the response at the new head did not replace the old one")
	}
	c.put(k(30), h0, bytes.Repeat([]byte("x"), int(6*one)))
	if c.get(k(30), h0) != nil {
		t.Fatal("a response larger than the budget was cached")
	}
}
