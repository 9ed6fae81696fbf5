package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
)

// authAtkServe starts a second enigm-command on loopback, with the
// default rate limits (the harness's server runs without them), and
// points the harness's devices at it.
func authAtkServe(t *testing.T, h *harness) {
	t.Helper()
	addr := freePort(t)
	data := filepath.Join(h.tmp, "auth-command-data")
	logb := &testkit.Buffer{}
	srv := exec.Command(filepath.Join(h.bin, "enigm-command"), "serve", "--listen", addr, "--data", data)
	srv.Env = append(os.Environ(), "ENIGM_COMMAND_PASSPHRASE="+h.cmdPass)
	srv.Stdout, srv.Stderr = logb, logb
	testkit.NoErr(t, srv.Start())
	t.Cleanup(func() {
		if !stopServer(srv) {
			t.Error("the rate-limited server did not shut down within 10s of SIGINT")
		}
		if t.Failed() {
			t.Logf("rate-limited server log (tail):\n%s", authAtkTail(logb.String(), 4000))
		}
	})
	waitHealthy(t, "http://"+addr, logb)
	h.server, h.data = "http://"+addr, data
}

func authAtkTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// authAtkFlood is one attacker: it authenticates for the account as fast
// as pace allows, from source (a loopback address), with fake device ids
// and forged challenges, and (when real is set) with real challenges for
// the owner's device answered by a signature of nobody. It stops after
// max requests or when ctx ends.
type authAtkFlood struct {
	sent, limited, served, failed atomic.Int64
	lastFail                      atomic.Value
}

func (f *authAtkFlood) run(ctx context.Context, server, source, account, real string, max int, blast int, pace time.Duration) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
	defer hc.CloseIdleConnections()
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 3373))
	post := func(path string, body map[string]string) (int, map[string]any) {
		j, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, "POST", server+path, bytes.NewReader(j))
		if err != nil {
			return 0, nil
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	// count counts a response; a 200 is a failure except for a challenge
	// for the real device.
	count := func(code int, challenge bool) {
		f.sent.Add(1)
		switch {
		case code == 0: // ctx ended or connection refused
		case code == http.StatusTooManyRequests:
			f.limited.Add(1)
		case code >= 500 || code == 200 && !challenge:
			f.failed.Add(1)
			f.lastFail.Store(code)
		default:
			f.served.Add(1)
		}
	}
	for n := 0; n < max && ctx.Err() == nil; n++ {
		var fake [16]byte
		copy(fake[:], fmt.Sprintf("%s/%d", source, n))
		fakeID := hex.EncodeToString(fake[:])
		switch {
		case n%3 == 0:
			c, _ := post("/v1/auth/challenge", map[string]string{"account_id": account, "device_id": fakeID})
			count(c, false)
		case n%3 == 1 || real == "":
			forged := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(n)}, 32))
			c, _ := post("/v1/auth/token", map[string]string{"account_id": account, "device_id": fakeID, "challenge": forged, "signature": sig})
			count(c, false)
		default:
			c, m := post("/v1/auth/challenge", map[string]string{"account_id": account, "device_id": real})
			count(c, true)
			if ch, _ := m["challenge"].(string); c == 200 && ch != "" {
				c, _ = post("/v1/auth/token", map[string]string{"account_id": account, "device_id": real, "challenge": ch, "signature": sig})
				count(c, false)
			}
		}
		if n >= blast && pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pace):
			}
		}
	}
}

// An outsider who knows an account floods its authentication while a
// recovery started with a stolen recovery code waits: the owner's device
// still vetoes it with the real enigm binary. Before issue 8 the flood
// emptied the account's authentication bucket and the veto got 429.
func TestAttackAuthFloodDuringRecovery(t *testing.T) {
	h := start(t)
	authAtkServe(t, h)

	owner, thief := h.device("auth-owner"), h.device("auth-thief")
	codeFile := filepath.Join(h.tmp, "auth-victim.recovery")
	oi := owner.ok("", "init", "--account", "victim", "--name", "owner", "--recovery-code-file", codeFile, "--json").json(t)
	account, ownerDev := str(oi, "account_id"), str(oi, "device_id")
	if account == "" || ownerDev == "" {
		t.Fatalf("init: %v", oi)
	}
	// The thief has the recovery code (it leaked) and starts a recovery.
	tr := thief.ok("", "recover", "--account", "victim", "--recovery-code-file", codeFile, "--name", "thief", "--no-wait", "--json").json(t)
	rid := str(tr, "request_id")
	if rid == "" {
		t.Fatalf("recover: %v", tr)
	}

	// The flood: from 127.0.0.2 and 127.0.0.3 where this machine lets a
	// client bind them, else from 127.0.0.1 (the owner's address too)
	// with fake device ids only, paced under the per-address budget after
	// a first burst.
	sources, real, blast, pace := []string{"127.0.0.2", "127.0.0.3"}, ownerDev, 0, 5*time.Millisecond
	for _, s := range sources {
		if l, err := net.Listen("tcp", s+":0"); err != nil {
			t.Logf("cannot bind %s (%v): flooding from 127.0.0.1", s, err)
			sources, real, blast, pace = []string{"127.0.0.1"}, "", 70, 250*time.Millisecond
			break
		} else {
			l.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	floods := make([]*authAtkFlood, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		floods[i] = &authAtkFlood{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			floods[i].run(ctx, h.server, s, account, real, 4000, blast, pace)
		}()
	}
	stop := func() {
		cancel()
		wg.Wait()
	}
	defer stop()
	// Let the flood run well past any per-account burst (60 before the
	// fix) before the owner acts.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var sent int64
		for _, f := range floods {
			sent += f.sent.Load()
		}
		if sent >= 150 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood sent only %d requests in 30 s", sent)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The owner learns the request id from the recovering device's output
	// here, and vetoes under the flood.
	v := owner.run("", "veto", rid, "--json")
	stop()
	if v.code != 0 {
		t.Fatalf("the owner's veto failed under the flood: exit %d\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
	var total, limited int64
	for i, f := range floods {
		t.Logf("flood from %s: %d sent, %d answered, %d refused with 429", sources[i], f.sent.Load(), f.served.Load(), f.limited.Load())
		if f.failed.Load() != 0 {
			t.Errorf("flood from %s: %d requests answered %v (a 5xx, or a token for nobody's signature)", sources[i], f.failed.Load(), f.lastFail.Load())
		}
		total += f.sent.Load()
		limited += f.limited.Load()
	}
	if len(sources) > 1 && limited == 0 {
		t.Errorf("the flood of %d requests was never limited", total)
	}

	// The recovery is vetoed: the thief's device never joins.
	resp, err := http.Get(h.server + "/v1/recoveries/" + rid)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	json.NewDecoder(resp.Body).Decode(&rec)
	resp.Body.Close()
	if str(rec, "state") != "vetoed" {
		t.Fatalf("the recovery after the veto: %v", rec)
	}
	if r := thief.run("", "sync", "--json"); r.code == 0 && str(r.json(t), "state") == "active" {
		t.Fatal("the thief's device joined")
	}
}
