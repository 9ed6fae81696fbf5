package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
)

// authFloodDo sends a request from the given client address (the tests'
// other requests come from httptest's 192.0.2.1).
func authFloodDo(e *env, addr, method, path string, body any) *resp {
	e.t.Helper()
	j, err := json.Marshal(body)
	testkit.NoErr(e.t, err)
	req := httptest.NewRequest(method, path, bytes.NewReader(j))
	req.RemoteAddr = addr + ":40000"
	req.Header.Set("Content-Type", "application/json")
	return e.serve(req)
}

// authFloodAddrs are the outsiders' addresses; the last is an IPv6 host
// that spreads itself over its /64.
var authFloodAddrs = []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "[2001:db8:1:2::1]"}

// authFlood plays the outsider who knows the account id and its device
// ids, and nothing secret: from each address until that address is
// refused, challenges for unknown devices, tokens for forged challenges,
// and challenges for the real device answered with a bad signature. It
// returns how many requests got a response other than 429.
func authFlood(t *testing.T, e *env, a *tacct, real *tdev) int {
	t.Helper()
	bad, err := testKey("outsider").Sign(AuthContext, []byte("not the challenge"))
	testkit.NoErr(t, err)
	served := 0
	for i, addr := range authFloodAddrs {
		for n := 0; ; n++ {
			if n == 400 {
				t.Fatalf("%s was never limited", addr)
			}
			// An IPv6 attacker changes its address inside its /64.
			if addr[0] == '[' {
				addr = fmt.Sprintf("[2001:db8:1:2::%x]", n+1)
			}
			fake := newDev(fmt.Sprintf("fake/%d/%d", i, n)).id.String()
			var r *resp
			switch n % 3 {
			case 0:
				r = authFloodDo(e, addr, "POST", "/v1/auth/challenge", map[string]string{"account_id": a.id, "device_id": fake})
			case 1:
				r = authFloodDo(e, addr, "POST", "/v1/auth/token", map[string]string{"account_id": a.id, "device_id": fake,
					"challenge": enc64(randomBytes(32)), "signature": enc64(bad.Bytes())})
			case 2:
				r = authFloodDo(e, addr, "POST", "/v1/auth/challenge", map[string]string{"account_id": a.id, "device_id": real.id.String()})
				if r.code == 200 {
					r = authFloodDo(e, addr, "POST", "/v1/auth/token", map[string]string{"account_id": a.id, "device_id": real.id.String(),
						"challenge": r.str("challenge"), "signature": enc64(bad.Bytes())})
				}
			}
			if r.code >= 500 || r.code == 200 {
				t.Fatalf("flood request from %s: %d %s", addr, r.code, r.body)
			}
			if r.code == http.StatusTooManyRequests {
				break
			}
			served++
		}
	}
	return served
}

// An outsider who knows an account floods its authentication from
// several addresses while a recovery started with a stolen recovery code
// waits: the account's device still authenticates, vetoes the recovery
// and revokes, under the default limits.
func TestAuthFloodDoesNotLockOutDevices(t *testing.T) {
	e := newEnv(t, withLimits())
	A, B, thief := newDev("alice/A"), newDev("alice/B"), newDev("thief")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	a.add(B, A)
	req, r := a.requestRecovery(thief)
	e.want(r, http.StatusCreated, "")
	a.sync()

	t.Logf("%d flood requests answered before every outsider address was refused", authFlood(t, e, a, A))
	// The outsiders' own addresses are refused now...
	e.want(authFloodDo(e, authFloodAddrs[0], "POST", "/v1/auth/challenge", map[string]string{"account_id": a.id, "device_id": A.id.String()}), 429, "rate_limited")
	// ...and the account's device, from its own address, is not.
	d := a.draft(&chain.RecoveryVeto{Request: req.Hash()})
	testkit.NoErr(t, d.SignDevice(A.id, A.key()))
	e.want(a.post(A, link(t, d)), http.StatusCreated, "")
	a.sync()
	if r := e.want(e.do("GET", "/v1/recoveries/"+req.Hash().String(), "", nil), 200, ""); r.str("state") != "vetoed" {
		t.Fatalf("after the veto: %s", r.body)
	}
	e.want(e.do("GET", "/v1/messages", a.token(A), nil), 200, "")
	// B is still fresh: it logs in under the same flood and revokes A.
	authFlood(t, e, a, B)
	e.want(a.post(B, a.revokeLink(B, A)), http.StatusCreated, "")
}

// A device that proved itself from an address keeps authenticating from
// there when outsiders have emptied the global verification budget; a
// bad signature from that address ends the standing. A challenge the
// server did not issue costs no verification.
func TestAuthProvenDeviceSurvivesDrainedVerifyBudget(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.AuthVerify = Rate{PerMinute: 60, Burst: 10}
	}))
	a, A, B := e.twoDevices("alice")
	a.login(A) // A proves itself from 192.0.2.1
	bad, _ := testKey("outsider").Sign(AuthContext, []byte("x"))

	// Forged challenges are refused before any verification: they leave
	// the verification budget alone.
	for n := 0; n < 50; n++ {
		e.want(authFloodDo(e, "198.51.100.9", "POST", "/v1/auth/token", map[string]string{"account_id": a.id, "device_id": A.id.String(),
			"challenge": enc64(randomBytes(32)), "signature": enc64(bad.Bytes())}), 401, "unauthorized")
	}
	// Real challenges with bad signatures empty it.
	verify := func(addr string, dev *tdev) *resp {
		r := e.want(authFloodDo(e, addr, "POST", "/v1/auth/challenge", map[string]string{"account_id": a.id, "device_id": dev.id.String()}), 200, "")
		return authFloodDo(e, addr, "POST", "/v1/auth/token", map[string]string{"account_id": a.id, "device_id": dev.id.String(),
			"challenge": r.str("challenge"), "signature": enc64(bad.Bytes())})
	}
	for n := 0; ; n++ {
		r := verify(fmt.Sprintf("198.51.100.%d", n%5+1), A)
		if r.code == http.StatusTooManyRequests {
			break
		}
		e.want(r, 401, "unauthorized")
		if n > 10 {
			t.Fatal("the verification budget was never exhausted")
		}
	}
	// B never proved itself from its address: it waits for the global
	// budget like everyone else.
	_, r := a.tryLogin(B)
	e.want(r, 429, "rate_limited")
	// A did: it still logs in, and revokes.
	delete(a.tokens, A.id)
	a.login(A)
	e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	a.sync()
	// A bad signature for A from A's address (someone behind the same
	// address) ends the standing: the next attempt waits for the global
	// budget.
	e.want(verify("192.0.2.1", A), 401, "unauthorized")
	_, r = a.tryLogin(A)
	e.want(r, 429, "rate_limited")
}

// Budgets still exist after proof, per device: a device that logs in too
// often is limited, and that does not touch the account's other devices;
// replays of its signed challenges do not count against it.
func TestAuthPerDeviceBudget(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.AuthPerDevice = Rate{PerMinute: 60, Burst: 3}
	}))
	a, A, B := e.twoDevices("alice") // A logged in once to approve B
	// A signed challenge that leaked: replayed from elsewhere, it yields
	// nothing and costs A nothing.
	leaked, r := a.answerChallenge(A)
	e.want(r, 200, "")
	e.want(e.do("POST", "/v1/auth/token", "", leaked), 200, "")
	for i := 0; i < 10; i++ {
		e.want(authFloodDo(e, "198.51.100.7", "POST", "/v1/auth/token", leaked), 401, "unauthorized")
	}
	_, r = a.tryLogin(A)
	e.want(r, 200, "")
	_, r = a.tryLogin(A)
	e.want(r, 429, "rate_limited")
	if r.hdr.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	_, r = a.tryLogin(B)
	e.want(r, 200, "")
	e.clock.Add(time.Second)
	_, r = a.tryLogin(A)
	e.want(r, 200, "")
}

// A challenge issued by one instance is answered at another over the same
// database, once.
func TestAuthChallengeAcrossInstances(t *testing.T) {
	e := newEnv(t)
	a, A := e.alice()
	other, err := New(Config{DataDir: e.cfg.DataDir, Store: e.srv.store, KeystorePassphrase: []byte("x"), Clock: e.clock.Now, Logger: discard, JanitorInterval: -1, RateLimits: &RateLimits{Disabled: true}})
	testkit.NoErr(t, err)
	defer other.Close()
	e2 := &env{t: t, srv: other, clock: e.clock, cfg: e.cfg}
	body, r := a.answerChallenge(A)
	e.want(r, 200, "")
	e2.want(e2.do("POST", "/v1/auth/token", "", body), 200, "")
	e.want(e.do("POST", "/v1/auth/token", "", body), 401, "unauthorized")
}

// Outsiders flood an account's enrollment endpoint from several addresses
// with requests no device will approve: the new device's own request
// still goes through.
func TestEnrollFloodDoesNotBlockTheAccount(t *testing.T) {
	e := newEnv(t, withLimits())
	a, A := e.alice()
	floodEnroll := func() {
		for i, addr := range authFloodAddrs {
			for n := 0; ; n++ {
				dev := newDev(fmt.Sprintf("spam/%d/%d", i, n))
				nc := nonce(dev.label)
				raw, err := chain.EncodeBody(&chain.AddDevice{Device: dev.device(), Nonce: nc, PairingHash: chain.PairingHash(nc, "guess")})
				testkit.NoErr(t, err)
				if addr[0] == '[' {
					addr = fmt.Sprintf("[2001:db8:1:2::%x]", n+1)
				}
				r := authFloodDo(e, addr, "POST", "/v1/accounts/"+a.id+"/enrollments", map[string]string{"type": "add_device", "body": enc64(raw)})
				if r.code == http.StatusTooManyRequests {
					break
				}
				e.want(r, http.StatusCreated, "")
				if n > 100 {
					t.Fatalf("%s was never limited", addr)
				}
			}
		}
	}
	floodEnroll()
	a.add(newDev("alice/B"), A)
}

// Outsiders flood an account's recovery endpoints from several addresses
// with links nobody with the recovery key (or the recovering device's key)
// signed: the recovering device's request and its completion still go
// through.
func TestRecoveryFloodDoesNotBlockTheAccount(t *testing.T) {
	e := newEnv(t, withLimits())
	A, C := newDev("alice/A"), newDev("alice/C")
	p := chain.DefaultPolicy()
	a := e.newAccount("alice", A, p)

	// Recovery requests signed with a guessed recovery key, and
	// completions nobody could sign.
	outsider := testKey("outsider")
	floodRecovery := func(rid string) {
		for _, addr := range authFloodAddrs {
			for n := 0; ; n++ {
				var r *resp
				if rid == "" {
					d := a.draft(&chain.RecoveryRequest{Device: newDev(fmt.Sprintf("thief/%d", n)).device()})
					testkit.NoErr(t, d.Sign(chain.RoleRecovery, outsider))
					testkit.NoErr(t, d.Sign(chain.RoleSubject, outsider))
					l, err := d.Link()
					testkit.NoErr(t, err)
					r = authFloodDo(e, addr, "POST", "/v1/accounts/"+a.id+"/recoveries", map[string]string{"link": enc64(l.Bytes())})
				} else {
					var h chain.Hash
					copy(h[:], mustHex(t, rid))
					d := a.draft(&chain.Recover{Request: h})
					testkit.NoErr(t, d.Sign(chain.RoleSubject, outsider))
					l, err := d.Link()
					testkit.NoErr(t, err)
					r = authFloodDo(e, addr, "POST", "/v1/recoveries/"+rid+"/complete", map[string]string{"link": enc64(l.Bytes())})
				}
				if r.code == http.StatusTooManyRequests {
					break
				}
				e.want(r, 422, "chain_rejected")
				if n > 100 {
					t.Fatalf("%s was never limited", addr)
				}
			}
		}
	}
	floodRecovery("")
	req, r := a.requestRecovery(C)
	e.want(r, http.StatusCreated, "")
	a.sync()
	e.clock.Add(p.RecoveryDelay + time.Second)
	floodRecovery(req.Hash().String())
	e.want(a.completeRecovery(C, req.Hash()), http.StatusCreated, "")
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, e := hexID("id", s, chain.HashSize)
	if e != nil {
		t.Fatal(e)
	}
	return b
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"198.51.100.7:1234", "198.51.100.7"},
		{"[::ffff:198.51.100.7]:1234", "198.51.100.7"},
		{"[2001:db8:1:2:aaaa::1]:1234", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:1234", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:1234", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:1234", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if got := addrKey(r); got != c.want {
			t.Errorf("addrKey(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}

// Pruning drops only buckets that are full again: a slow bucket is not
// reset early by the pruning a fast one triggers.
func TestLimiterPrunesOnlyFullBuckets(t *testing.T) {
	clock := testkit.NewClock(t0)
	l := newLimiter(clock.Now)
	slow, fast := Rate{PerMinute: 1, Burst: 1}, Rate{PerMinute: 600, Burst: 1}
	if l.take("slow", slow) != 0 || l.take("fast", fast) != 0 {
		t.Fatal("a new bucket is empty")
	}
	clock.Add(30 * time.Second)
	l.prune()
	if w := l.take("slow", slow); w != 30 {
		t.Fatalf("the slow bucket was reset by pruning (wait %d)", w)
	}
	if _, ok := l.buckets["fast"]; ok {
		t.Fatal("a full bucket was kept")
	}
}

// Unauthenticated work is bounded globally too: many addresses together
// meet the global bucket.
func TestGlobalBudgetsBoundUnauthenticatedWork(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.EnrollGlobal = Rate{PerMinute: 60, Burst: 3}
		rl.RecoveryGlobal = Rate{PerMinute: 60, Burst: 2}
	}))
	a, _ := e.alice()
	for n := 0; n < 4; n++ {
		dev := newDev(fmt.Sprintf("many/%d", n))
		nc := nonce(dev.label)
		raw, err := chain.EncodeBody(&chain.AddDevice{Device: dev.device(), Nonce: nc, PairingHash: chain.PairingHash(nc, "x")})
		testkit.NoErr(t, err)
		r := authFloodDo(e, fmt.Sprintf("198.51.100.%d", n+1), "POST", "/v1/accounts/"+a.id+"/enrollments", map[string]string{"type": "add_device", "body": enc64(raw)})
		if n < 3 {
			e.want(r, http.StatusCreated, "")
		} else {
			e.want(r, 429, "rate_limited")
		}
	}
	l := a.recoveryRequest(newDev("alice/C"))
	for n := 0; n < 3; n++ {
		r := authFloodDo(e, fmt.Sprintf("203.0.113.%d", n+1), "POST", "/v1/accounts/"+a.id+"/recoveries", map[string]string{"link": enc64(l.Bytes())})
		switch n {
		case 0:
			e.want(r, http.StatusCreated, "")
		case 1:
			e.want(r, 409, "conflict") // the same link again: the head moved
		default:
			e.want(r, 429, "rate_limited")
		}
	}
	m := string(e.do("GET", "/metrics", "", nil).body)
	for _, b := range []string{"enroll-global", "recovery-global"} {
		if !strings.Contains(m, `enigm_command_rate_limited_total{bucket="`+b+`"} 1`) {
			t.Errorf("%s not counted:\n%s", b, m)
		}
	}
}

// A stolen device that keeps appending rotations to race the owner's
// revocation is bounded by its own link budget; revocations are never
// charged, so the owner's goes through even when that budget is spent.
func TestLinkBudgetBoundsHeadRacing(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.LinkPerDevice = Rate{PerMinute: 1, Burst: 2}
	}))
	A, S := newDev("alice/A"), newDev("alice/S")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	a.add(S, A)
	for gen := 1; gen <= 2; gen++ {
		e.want(a.post(S, a.rotateKEMLink(S, gen)), 201, "")
		a.sync()
	}
	r := e.want(a.post(S, a.rotateKEMLink(S, 3)), 429, "rate_limited")
	if r.hdr.Get("Retry-After") == "" {
		t.Fatal("no Retry-After on the link budget's 429")
	}
	// A's own budget is untouched by S's, and revocations cost nothing:
	// with A's budget spent too, A still revokes S.
	for gen := 1; gen <= 2; gen++ {
		e.want(a.post(A, a.rotateKEMLink(A, gen)), 201, "")
		a.sync()
	}
	e.want(a.post(A, a.rotateKEMLink(A, 3)), 429, "rate_limited")
	e.want(a.post(A, a.revokeLink(A, S)), 201, "")
}
