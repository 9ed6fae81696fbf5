package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/testkit"
)

// The recovery takeover of issue 12: a thief with the recovery code and a
// compromised server revokes every device with the recovery key, so that
// nobody is left to veto its recovery. The recovery key signs recovery
// only, so the revocation is refused by Command (appended behind its back,
// it is an integrity failure) and by the owner's real device (served by a
// hostile server, it fails verification: nothing is destroyed); the thief
// is left with the visible, vetoable recovery request.
func TestAttackRecoveryTakeover(t *testing.T) {
	h := start(t)
	owner := h.device("owner")
	codeFile := filepath.Join(h.tmp, "owner.recovery")
	oi := owner.ok("", "init", "--account", "ruth", "--name", "laptop", "--recovery-delay", "1h", "--recovery-code-file", codeFile, "--json").json(t)
	acct, err := client.ParseAccountID(str(oi, "account_id"))
	if err != nil {
		t.Fatal(err)
	}
	rk := leakedRecoveryKey(t, codeFile)
	st := verifiedChain(t, h, acct)
	only := st.Active()[0].ID

	// The thief's revocation of the owner's only device, signed by the
	// recovery key.
	dr, err := chain.NewDraft(st, time.Now(), &chain.RevokeDevice{ID: only})
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, dr.Sign(chain.RoleRecovery, rk))
	forged, err := dr.Link()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Apply(st, forged, time.Now()); err == nil {
		t.Fatal("the chain accepts a revocation signed by the recovery key")
	}

	// 1. A hostile server serves it to the owner's device: the device's
	// own verification refuses it, it stays active and keeps its keys.
	var mu sync.Mutex
	inject := true
	backend, _ := url.Parse(h.server)
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, body, ok := testkit.Forward(w, r, backend)
		if !ok {
			return
		}
		mu.Lock()
		on := inject
		mu.Unlock()
		if on && r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/chain") && resp.StatusCode == 200 {
			var v map[string]any
			json.Unmarshal(body, &v)
			links, _ := v["links"].([]any)
			if len(links) > 0 && r.URL.Query().Get("after") != "" {
				links = links[:0]
			}
			v["links"] = append(links, base64.StdEncoding.EncodeToString(forged.Bytes()))
			v["head"] = map[string]any{"seq": forged.Seq(), "hash": forged.Hash().String()}
			body, _ = json.Marshal(v)
		}
		testkit.Reply(w, resp, body)
	}))
	t.Cleanup(hostile.Close)
	victim := &device{h: &harness{t: t, bin: h.bin, server: hostile.URL}, home: owner.home, pass: owner.pass}
	r := victim.run("", "sync", "--json")
	t.Logf("owner behind the hostile server: exit %d: %s", r.code, r.stderr)
	if r.code == 0 {
		t.Fatalf("the owner's device accepted a chain with a recovery-key revocation:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "does not verify") || !strings.Contains(r.stderr, "revoke_device signed by the recovery key") {
		t.Fatalf("the refusal does not say why:\n%s%s", r.stdout, r.stderr)
	}
	mu.Lock()
	inject = false
	mu.Unlock()
	if s := owner.ok("", "status", "--json").json(t); str(s, "state") != "active" {
		t.Fatalf("the owner's device after the hostile server's revocation: %v", s)
	}
	if s := owner.ok("", "keystore", "status", "--json").json(t); s["revoked"] == true {
		t.Fatal("the owner's keystore destroyed its keys on a forged revocation")
	}

	// 2. Appended behind Command's back, it is an integrity failure: the
	// account is served to nobody and nothing is appended to it.
	db := commandDB(t, h)
	storeBehind(t, db, acct.String(), forged)
	code2, body := ahCall(t, h, "GET", "/v1/accounts/"+acct.String()+"/devices", "", nil)
	if code2 < 500 || !bytes.Contains(body, []byte("integrity")) && !bytes.Contains(body, []byte("store_inconsistent")) {
		t.Fatalf("Command serves an account whose stored chain holds a recovery-key revocation: %d %s", code2, body)
	}
	if r := owner.run("", "sync"); r.code == 0 {
		t.Fatal("the owner's device synced a chain Command cannot verify")
	}
	if s := owner.ok("", "keystore", "status", "--json").json(t); s["revoked"] == true {
		t.Fatal("the owner's keystore destroyed its keys")
	}

	// 3. Undone, the thief is left with the one thing the recovery key may
	// sign: a visible request that the owner's device notices and vetoes.
	if _, err := db.Exec(`DELETE FROM links WHERE account_id = ? AND seq = ?`, acct.String(), forged.Seq()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`, st.Head().Seq, st.Head().Hash.String(), acct.String()); err != nil {
		t.Fatal(err)
	}
	thief := h.device("thief")
	thief.ok("", "recover", "--account", "ruth", "--recovery-code-file", codeFile, "--name", "laptop", "--no-wait")
	if r := owner.run("", "sync"); r.code != 4 {
		t.Fatalf("the owner's sync with a recovery pending: exit %d, want 4\n%s%s", r.code, r.stdout, r.stderr)
	}
	owner.ok("", "veto")
	if r := owner.run("", "sync"); r.code != 0 {
		t.Fatalf("the owner's sync after the veto: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
