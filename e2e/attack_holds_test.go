package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// The attacks in this file already fail against the first stage; they are
// played against the real binaries so that they keep failing: another
// account's device acting on the victim's account, replays of one-time
// values and of links, and malformed input to every route of the API.
// (Links forged directly in the database: TestEndToEnd, forgeLink.)

// ahCall makes one API request and returns the status and body.
func ahCall(t *testing.T, h *harness, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.server+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, out
}

func ahJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ahAccount registers an unmanaged account whose first device is d, and
// returns its verified state.
func ahAccount(t *testing.T, h *harness, name string, d *rawDevice) *chain.State {
	t.Helper()
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	recovery, err := hybrid.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	pol := chain.DefaultPolicy()
	pol.RecoveryDelay = 24 * time.Hour
	dr, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: d.rec, Recovery: recovery.Public(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, dr.Sign(chain.RoleSubject, d.key))
	testkit.NoErr(t, dr.Sign(chain.RoleNewRecovery, recovery))
	l, err := dr.Link()
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.Apply(nil, l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, body := ahCall(t, h, "POST", "/v1/accounts", "", ahJSON(t, map[string]string{"name": name, "genesis": base64.StdEncoding.EncodeToString(l.Bytes())}))
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("creating account %s: %d %s", name, code, body)
	}
	return st
}

// ahChallenge asks for a login challenge for (account, device).
func ahChallenge(t *testing.T, h *harness, acct chain.AccountID, dev chain.DeviceID) (int, string) {
	t.Helper()
	code, body := ahCall(t, h, "POST", "/v1/auth/challenge", "", ahJSON(t, map[string]string{
		"account_id": acct.String(), "device_id": hex.EncodeToString(dev[:])}))
	var ch struct {
		Challenge string `json:"challenge"`
	}
	json.Unmarshal(body, &ch)
	return code, ch.Challenge
}

// ahTokenRequest is the body of POST /v1/auth/token for a challenge,
// signed by d.
func ahTokenRequest(t *testing.T, acct chain.AccountID, d *rawDevice, challenge string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	ctx, err := hybrid.Context("auth/token")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := d.key.Sign(ctx, client.TokenMessage(acct, d.rec.ID, raw))
	if err != nil {
		t.Fatal(err)
	}
	return ahJSON(t, map[string]string{"account_id": acct.String(), "device_id": hex.EncodeToString(d.rec.ID[:]),
		"challenge": challenge, "signature": base64.StdEncoding.EncodeToString(sig.Bytes())})
}

// ahLogin obtains a device token for d in acct.
func ahLogin(t *testing.T, h *harness, acct chain.AccountID, d *rawDevice) string {
	t.Helper()
	code, ch := ahChallenge(t, h, acct, d.rec.ID)
	if code != http.StatusOK {
		t.Fatalf("challenge: %d", code)
	}
	code, body := ahCall(t, h, "POST", "/v1/auth/token", "", ahTokenRequest(t, acct, d, ch))
	if code != http.StatusOK {
		t.Fatalf("token: %d %s", code, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	json.Unmarshal(body, &tok)
	return tok.Token
}

func TestAttacksThatHold(t *testing.T) {
	h := start(t)

	// The victim: a real device with the real CLI, and a second device
	// waiting to be approved.
	a := h.device("victim-a")
	ai := a.ok("", "init", "--account", "victim", "--name", "laptop", "--recovery-delay", "24h", "--json").json(t)
	victim, err := client.ParseAccountID(str(ai, "account_id"))
	if err != nil {
		t.Fatal(err)
	}
	b := h.device("victim-b")
	en := b.ok("", "enroll", "--account", "victim", "--name", "phone", "--no-wait", "--json").json(t)
	rid := str(en, "request_id")
	before := verifiedChain(t, h, victim)

	// The attacker owns an account of its own, with a real token.
	m := newRawDevice(t, "mallory")
	mst := ahAccount(t, h, "mallory", m)
	mtok := ahLogin(t, h, mst.Account(), m)

	t.Run("another account's device", func(t *testing.T) {
		// It cannot log in as a member of the victim's account.
		if code, _ := ahChallenge(t, h, victim, m.rec.ID); code != http.StatusNotFound {
			t.Errorf("challenge for the attacker's device in the victim's account: %d, want 404", code)
		}
		// Nor approve the victim's enrollment request with its own token.
		code, body := ahCall(t, h, "POST", "/v1/enrollments/"+rid+"/approve", mtok, ahJSON(t, map[string]any{
			"head": client.HeadJSON(before.Head()), "signature": base64.StdEncoding.EncodeToString(make([]byte, hybrid.SignatureSize))}))
		if code != http.StatusForbidden {
			t.Errorf("approving the victim's enrollment with another account's token: %d %s, want 403", code, body)
		}
		// Nor list the victim's enrollments.
		if code, body := ahCall(t, h, "GET", "/v1/accounts/"+victim.String()+"/enrollments", mtok, nil); code != http.StatusForbidden {
			t.Errorf("listing the victim's enrollments with another account's token: %d %s, want 403", code, body)
		}
		// Nor append a revocation of the victim's device that it signed.
		dr, err := chain.NewDraft(before, time.Now(), &chain.RevokeDevice{ID: before.Active()[0].ID})
		if err != nil {
			t.Fatal(err)
		}
		testkit.NoErr(t, dr.SignDevice(m.rec.ID, m.key))
		l, err := dr.Link()
		if err != nil {
			t.Fatal(err)
		}
		code, body = ahCall(t, h, "POST", "/v1/accounts/"+victim.String()+"/links", mtok, ahJSON(t, map[string]string{"link": base64.StdEncoding.EncodeToString(l.Bytes())}))
		if code != http.StatusForbidden && code != http.StatusUnprocessableEntity {
			t.Errorf("appending the attacker's revocation of the victim's device: %d %s, want 403 or 422", code, body)
		}
	})

	t.Run("replays", func(t *testing.T) {
		// A login challenge is single use, even with a valid signature.
		code, ch := ahChallenge(t, h, mst.Account(), m.rec.ID)
		if code != http.StatusOK {
			t.Fatalf("challenge: %d", code)
		}
		req := ahTokenRequest(t, mst.Account(), m, ch)
		if code, body := ahCall(t, h, "POST", "/v1/auth/token", "", req); code != http.StatusOK {
			t.Fatalf("first use of the challenge: %d %s", code, body)
		}
		if code, body := ahCall(t, h, "POST", "/v1/auth/token", "", req); code != http.StatusUnauthorized {
			t.Errorf("second use of the challenge: %d %s, want 401", code, body)
		}
		// An appended link cannot be appended again.
		seed := make([]byte, hybrid.SeedSize)
		rand.Read(seed)
		nk, err := hybrid.NewPrivateKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		dr, err := chain.NewDraft(mst, time.Now(), &chain.RotateKeys{ID: m.rec.ID, Identity: nk.Public()})
		if err != nil {
			t.Fatal(err)
		}
		testkit.NoErr(t, dr.SignDevice(m.rec.ID, m.key))
		testkit.NoErr(t, dr.Sign(chain.RoleSubject, nk))
		l, err := dr.Link()
		if err != nil {
			t.Fatal(err)
		}
		link := ahJSON(t, map[string]string{"link": base64.StdEncoding.EncodeToString(l.Bytes())})
		if code, body := ahCall(t, h, "POST", "/v1/accounts/"+mst.Account().String()+"/links", mtok, link); code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("first append of the rotation: %d %s", code, body)
		}
		code, body := ahCall(t, h, "POST", "/v1/accounts/"+mst.Account().String()+"/links", mtok, link)
		if code != http.StatusConflict && code != http.StatusUnprocessableEntity {
			t.Errorf("the same link appended again: %d %s, want 409 or 422", code, body)
		}
		// The old identity key no longer logs in: its signature is refused.
		code, ch = ahChallenge(t, h, mst.Account(), m.rec.ID)
		if code != http.StatusOK {
			t.Fatalf("challenge after rotation: %d", code)
		}
		if code, body := ahCall(t, h, "POST", "/v1/auth/token", "", ahTokenRequest(t, mst.Account(), m, ch)); code != http.StatusUnauthorized {
			t.Errorf("login with the rotated-out identity key: %d %s, want 401", code, body)
		}
	})

	t.Run("malformed input to every route", func(t *testing.T) {
		routes := ahRoutes(t)
		if len(routes) < 25 {
			t.Fatalf("read only %d routes from api/openapi.yaml", len(routes))
		}
		ids := map[string][]string{
			"{id}":   {victim.String(), strings.Repeat("0", 64), "zz", strings.Repeat("a", 300)},
			"{rid}":  {rid, strings.Repeat("f", 32), "%2e%2e", "x"},
			"{name}": {"victim", strings.Repeat("n", 300), "%00"},
			"{code}": {"EIC-0000", strings.Repeat("c", 300)},
			"{seq}":  {"0", "1", "-1", "18446744073709551616", "x"},
		}
		deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
		bodies := [][]byte{
			nil, []byte(""), []byte("null"), []byte("{}"), []byte("[]"), []byte("\x00\xff\xfe garbage"),
			[]byte(deep), []byte(`{"a":` + deep[:5000] + `}`),
			[]byte(`{"link": 7, "account_id": [], "device_id": {}, "challenge": true, "signature": 1.5, "head": "x", "genesis": null, "name": 5}`),
			[]byte(`{"link": "` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa8}, 4000)) + `"}`),
			[]byte(`{"genesis": "////", "name": "x"}`),
			[]byte(`{"head": {"seq": -1, "hash": "` + strings.Repeat("g", 64) + `"}, "signature": "AAAA"}`),
			[]byte(`{"envelopes": [{"account_id": "` + victim.String() + `", "device_id": "00", "cipher": "!!"}], "kind": "nope"}`),
			[]byte(`{"ids": ["` + strings.Repeat("1", 1000) + `"]}`),
		}
		huge := bytes.Repeat([]byte("a"), 2<<20) // over the 1 MiB request limit
		tokens := []string{"", mtok, "edt_forged", "eat_forged", strings.Repeat("x", 5000)}
		n := 0
		for _, rt := range routes {
			paths := ahExpand(rt.path, ids)
			if rt.method != "GET" {
				if code, out := ahCall(t, h, rt.method, paths[0], mtok, huge); code >= 500 {
					t.Errorf("%s %s with a 2 MiB body: %d %s", rt.method, paths[0], code, out)
				}
			}
			for _, path := range paths {
				for _, tok := range tokens {
					for _, body := range bodies {
						if rt.method == "GET" && body != nil {
							continue
						}
						code, out := ahCall(t, h, rt.method, path, tok, body)
						n++
						if code >= 500 {
							t.Errorf("%s %s (token %.8q, body %.40q): %d %s", rt.method, path, tok, body, code, out)
						}
					}
				}
			}
		}
		t.Logf("%d malformed requests over %d routes", n, len(routes))
		if code, _ := ahCall(t, h, "GET", "/healthz", "", nil); code != http.StatusOK {
			t.Fatalf("the server is unhealthy after the malformed requests: %d", code)
		}
		if strings.Contains(h.srvLog.String(), "panic") {
			t.Fatalf("the server logged a panic:\n%s", h.srvLog.String())
		}
	})

	// Nothing the attacker did changed the victim's account: same head,
	// the enrollment still waits, and the victim's own device still works.
	after := verifiedChain(t, h, victim)
	if after.Head() != before.Head() {
		t.Fatalf("the victim's head moved from %v to %v", before.Head(), after.Head())
	}
	a.ok("", "approve", rid, "--code", str(en, "pairing_code"))
	if st := b.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("the victim's own enrollment after the attacks: %v", st)
	}
}

type ahRoute struct{ method, path string }

// ahRoutes reads every route from the OpenAPI description.
func ahRoutes(t *testing.T) []ahRoute {
	t.Helper()
	f, err := os.Open("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRe := regexp.MustCompile(`^  (/[^:]*):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|post|put|delete|patch):\s*$`)
	var out []ahRoute
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := pathRe.FindStringSubmatch(sc.Text()); m != nil {
			cur = m[1]
		} else if m := methodRe.FindStringSubmatch(sc.Text()); m != nil && cur != "" {
			out = append(out, ahRoute{strings.ToUpper(m[1]), cur})
		}
	}
	return out
}

// ahExpand fills a route's path parameters with every listed value.
func ahExpand(path string, ids map[string][]string) []string {
	for p, vals := range ids {
		if !strings.Contains(path, p) {
			continue
		}
		var out []string
		for _, v := range vals {
			out = append(out, ahExpand(strings.Replace(path, p, v, 1), ids)...)
		}
		return out
	}
	if strings.Contains(path, "{") {
		panic(fmt.Sprintf("route %s has a parameter this test does not fill", path))
	}
	return []string{path}
}
