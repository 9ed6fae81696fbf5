package command

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// engines runs fn on SQLite and on PostgreSQL (skipped, or failed under
// ENIGM_REQUIRE_ALL=1, without a server).
func TestMalformedRequests(t *testing.T) {
	e := newEnv(t)
	a, A := e.alice()
	tok := a.token(A)
	for _, tc := range []struct {
		desc, method, path, token string
		body                      any
		code                      int
		errCode                   string
	}{
		{"not JSON", "POST", "/v1/accounts", "", "{name", 400, "bad_request"},
		{"empty body", "POST", "/v1/accounts", "", "", 400, "bad_request"},
		{"unknown field", "POST", "/v1/accounts", "", `{"name":"x","genesis":"AA==","extra":1}`, 400, "bad_request"},
		{"trailing data", "POST", "/v1/auth/challenge", "", `{"account_id":"` + a.id + `","device_id":"` + A.id.String() + `"} {}`, 400, "bad_request"},
		{"wrong type", "POST", "/v1/accounts", "", `{"name":7}`, 400, "bad_request"},
		{"deeply nested", "POST", "/v1/accounts", "", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), 400, "bad_request"},
		{"oversized", "POST", "/v1/accounts", "", `{"name":"` + strings.Repeat("a", MaxRequestSize) + `"}`, 413, "too_large"},
		{"oversized link", "POST", "/v1/accounts", "", map[string]string{"name": "x", "genesis": enc64(make([]byte, chain.MaxLinkSize+1))}, 422, "chain_rejected"},
		{"bad base64", "POST", "/v1/auth/token", "", map[string]string{"account_id": a.id, "device_id": A.id.String(), "challenge": "!!", "signature": "AA=="}, 400, "bad_request"},
		{"unpadded base64", "POST", "/v1/auth/token", "", map[string]string{"account_id": a.id, "device_id": A.id.String(), "challenge": "AAA", "signature": "AA=="}, 400, "bad_request"},
		{"uppercase id", "POST", "/v1/auth/challenge", "", map[string]string{"account_id": strings.ToUpper(a.id), "device_id": A.id.String()}, 400, "bad_request"},
		{"short device id", "POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": "abcd"}, 400, "bad_request"},
		{"bad request id", "GET", "/v1/enrollments/xyz", "", nil, 400, "bad_request"},
		{"bad limit", "GET", "/v1/messages?limit=0", tok, nil, 400, "bad_request"},
		{"huge limit", "GET", "/v1/messages?limit=99999999999999999999", tok, nil, 400, "bad_request"},
		{"truncated link", "POST", "/v1/accounts/" + a.id + "/links", tok, map[string]string{"link": enc64([]byte{0xa8, 0x01})}, 400, "bad_request"},
		{"genesis on links", "POST", "/v1/accounts/" + a.id + "/links", tok, map[string]string{"link": enc64(a.mustChainLink(0))}, 400, "bad_request"},
		{"other account's links", "POST", "/v1/accounts/" + strings.Repeat("1", 64) + "/links", tok, map[string]string{"link": "AA=="}, 403, "forbidden"},
		{"bad enrollment body", "POST", "/v1/accounts/" + a.id + "/enrollments", "", map[string]string{"type": "add_device", "body": "oA=="}, 400, "bad_request"},
		{"unknown account enrollments", "GET", "/v1/accounts/" + a.id + "/enrollments", "", nil, 401, "unauthorized"},
		{"review without admin", "POST", "/v1/admin/recoveries/" + strings.Repeat("0", 64) + "/review", tok, map[string]any{"approve": true}, 401, "unauthorized"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			if r.code != tc.code || r.errCode() != tc.errCode {
				t.Fatalf("got %d %s, want %d %s", r.code, r.body, tc.code, tc.errCode)
			}
			if r.hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", r.hdr.Get("Content-Type"))
			}
		})
	}
	// Nothing of the above changed the account.
	a.sync()
	if a.st.Head().Seq != 0 {
		t.Fatalf("head moved to %d", a.st.Head().Seq)
	}
}

// mustChainLink returns the stored bytes of link seq.
func (a *tacct) mustChainLink(seq int) []byte {
	links, err := a.e.srv.store.Links(context.Background(), a.id, int64(seq)-1, 1)
	if err != nil || len(links) != 1 {
		a.e.t.Fatalf("link %d: %v", seq, err)
	}
	return links[0].Data
}

// Many devices append at the same head at once: exactly one link wins,
// the others get 409 conflict with the new head, and the stored chain
// verifies.
func TestAppendRaceOverHTTP(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		e := newEnvDSN(t, dsn)
		devs := []*tdev{newDev("race/A")}
		a := e.newAccount("race", devs[0], chain.DefaultPolicy())
		for i := 1; i < 6; i++ {
			d := newDev(fmt.Sprintf("race/%d", i))
			a.add(d, devs[0])
			devs = append(devs, d)
		}
		for _, d := range devs {
			a.token(d)
		}
		for round := 0; round < 3; round++ {
			a.sync()
			links := make([]*chain.Link, len(devs))
			for i, d := range devs {
				links[i] = a.rotateKEMLink(d, round+1)
			}
			codes := make([]int, len(devs))
			heads := make([]float64, len(devs))
			var wg sync.WaitGroup
			for i, d := range devs {
				wg.Add(1)
				go func(i int, d *tdev) {
					defer wg.Done()
					r := a.post(d, links[i])
					codes[i] = r.code
					if r.code == http.StatusConflict {
						heads[i] = r.m["error"].(map[string]any)["head"].(map[string]any)["seq"].(float64)
					}
				}(i, d)
			}
			wg.Wait()
			won := 0
			for i, c := range codes {
				switch c {
				case http.StatusCreated:
					won++
				case http.StatusConflict:
					if heads[i] != float64(a.st.Head().Seq+1) {
						t.Fatalf("conflict names head %v, want %d", heads[i], a.st.Head().Seq+1)
					}
				default:
					t.Fatalf("append got %d", c)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d appends won (%v)", round, won, codes)
			}
		}
		a.sync() // verifies the whole stored chain
		if a.st.Head().Seq != 5+3 {
			t.Fatalf("head %d after the races", a.st.Head().Seq)
		}
	})
}

// A link inserted into the database behind the server's back (a ghost
// device approved by nobody, with the head moved to it) is refused by the
// server's own verification: it serves no state from it, logs it, and
// accepts nothing on top of it.
func TestForgedLinkInDatabaseIsRefused(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		e := newEnvDSN(t, dsn)
		e.waitListening()
		A, G := newDev("alice/A"), newDev("alice/ghost")
		a := e.newAccount("alice", A, chain.DefaultPolicy())
		tokA := a.token(A)
		a.devices() // cached and verified
		// The ghost's add_device, signed by the ghost alone and by an
		// organisation key the account does not have.
		n := nonce("ghost")
		d := a.draft(&chain.AddDevice{Device: G.device(), Nonce: n, PairingHash: chain.PairingHash(n, "x")})
		testkit.NoErr(t, d.Sign(chain.RoleSubject, G.key()))
		testkit.NoErr(t, d.Sign(chain.RoleOrg, testKey("evil org")))
		l := link(t, d)
		db := storetest.RawDB(t, dsn)
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, storetest.Rebind(dsn, `INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,?,?,?,?,?,?)`),
			a.id, 1, l.Hash().String(), l.Prev().String(), "add_device", l.Bytes(), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, storetest.Rebind(dsn, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`), 1, l.Hash().String(), a.id); err != nil {
			t.Fatal(err)
		}
		// On PostgreSQL the change is announced to the server like any
		// other (the trigger fires whoever changes the row).
		e.waitAnnounced(a.id, 1)
		check := func(e *env) {
			t.Helper()
			r := e.want(e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 500, "integrity")
			if r.m["devices"] != nil || r.m["links"] != nil {
				t.Fatal("state was served from the forged chain")
			}
			e.want(e.do("GET", "/v1/accounts/"+a.id+"/chain", "", nil), 500, "integrity")
			e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": G.id.String()}), 500, "integrity")
			e.want(e.do("POST", "/v1/messages", tokA, map[string]any{"kind": "message", "envelopes": []env1{envTo(a, A, "x")}}), 500, "integrity")
			if !strings.Contains(e.logText(), "stored chain fails the server's verification") || !strings.Contains(e.logText(), "no active device approved") {
				t.Fatalf("no clear log line:\n%s", e.logText())
			}
			m := string(e.do("GET", "/metrics", "", nil).body)
			if !strings.Contains(m, "enigm_command_chain_integrity_failures_total 1") {
				t.Fatal("integrity failure not counted")
			}
		}
		check(e)
		// A fresh instance (no cache) verifies from genesis and refuses too.
		check(newEnvDSN(t, dsn))
	})
}
