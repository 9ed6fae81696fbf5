package command

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
)

func TestRateLimits(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.AuthPerAddr = Rate{PerMinute: 60, Burst: 3}
		rl.EnrollPerAddr = Rate{PerMinute: 6, Burst: 2}
	}))
	a, A := e.alice()
	body := map[string]string{"account_id": a.id, "device_id": A.id.String()}
	for i := 0; i < 3; i++ {
		e.want(e.do("POST", "/v1/auth/challenge", "", body), 200, "")
	}
	r := e.want(e.do("POST", "/v1/auth/challenge", "", body), 429, "rate_limited")
	if r.hdr.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	e.clock.Add(time.Second)
	e.want(e.do("POST", "/v1/auth/challenge", "", body), 200, "")
	// Enrollment requests per address.
	a.requestAdd(newDev("alice/B"))
	a.requestAdd(newDev("alice/C"))
	_, r = a.tryRequest(newDev("alice/D"), nil)
	e.want(r, 429, "rate_limited")
	if r.hdr.Get("Retry-After") != "10" {
		t.Fatalf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	if !strings.Contains(string(e.do("GET", "/metrics", "", nil).body), `enigm_command_rate_limited_total{bucket="enroll"} 1`) {
		t.Fatal("rate limiting not counted")
	}
}

// TestChainErrorNames: "chain_error" carries the chain code's wire name,
// never its Go identifier, for every code.
func TestChainErrorNames(t *testing.T) {
	for _, c := range chain.Codes() {
		got := chainErrorName(fmt.Errorf("link 3: %w", c))
		if got != c.String() || strings.HasPrefix(got, "Err") {
			t.Errorf("%v named %q, want %q", c, got, c.String())
		}
		if back, ok := chain.ParseCode(got); !ok || back != c {
			t.Errorf("%q does not parse back to %v", got, c)
		}
	}
	both := fmt.Errorf("%w: %w", chain.ErrMalformed, chain.ErrMissingPQ)
	if chainErrorName(both) != "missing_pq" {
		t.Fatal("the specific code should win over malformed")
	}
	if chainErrorName(errors.New("other")) != "" {
		t.Fatal("a non-chain error has a name")
	}
}

// The workflow steps show in the metrics; tokens, invite codes and admin
// tokens never reach the log.
func TestMetricsAndLogsOfWorkflows(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("Acme", Policy{})
	A, B := newDev("alice/A"), newDev("alice/B")
	code := e.invite(o, "alice")
	a, r := e.tryManaged(o, "alice", A, code)
	e.want(r, http.StatusCreated, "")
	a.add(B, A)
	tok := a.token(A)
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": B.id.String()}), 201, "")
	m := string(e.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`enigm_command_links_appended_total{type="genesis"} 1`,
		`enigm_command_links_appended_total{type="add_device"} 1`,
		`enigm_command_links_appended_total{type="revoke_device"} 1`,
		`enigm_command_workflow_events_total{action="enrollment.approve"} 1`,
		`enigm_command_workflow_events_total{action="device.admin_revoke"} 1`,
		`enigm_command_requests_total{route="POST /v1/admin/accounts/{id}/revoke",method="POST",code="201"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := e.logText()
	for _, secret := range []string{tok, o.AdminToken, code} {
		if strings.Contains(logs, secret) {
			t.Fatal("a secret reached the log")
		}
	}
	if !strings.Contains(logs, `"route":"POST /v1/admin/accounts/{id}/revoke"`) {
		t.Fatal("requests are not logged")
	}
}

// Without a passphrase in the config or environment, the first
// organisation generates one into the data directory (0600) and says so.
func TestGeneratedKeystorePassphrase(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.KeystorePassphrase = nil
		c.Getenv = func(string) string { return "" }
	})
	o := e.newOrg("Acme", Policy{})
	path := filepath.Join(e.cfg.DataDir, PassphraseFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("passphrase file: %v %v", st, err)
	}
	if !strings.Contains(e.logText(), "protects nothing against someone who can read the data directory") {
		t.Fatal("no warning about the generated passphrase")
	}
	// The server signs with it (admin revoke needs the key).
	a := e.newManaged(o, "alice", newDev("alice/A"))
	B := newDev("alice/B")
	a.add(B, newDev("alice/A"))
	e.want(e.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": B.id.String()}), 201, "")
	// The environment variable wins over the file; a wrong one fails.
	e2 := newEnv(t, func(c *Config) {
		c.DataDir = e.cfg.DataDir
		c.Store = e.srv.store
		c.KeystorePassphrase = nil
		c.Getenv = func(k string) string {
			if k == PassphraseEnv {
				return "wrong"
			}
			return ""
		}
	})
	C := newDev("alice/C")
	a.sync()
	a.add(C, newDev("alice/A"))
	e2.want(e2.do("POST", "/v1/admin/accounts/"+a.id+"/revoke", o.AdminToken, map[string]string{"device_id": C.id.String()}), 500, "internal")
}
