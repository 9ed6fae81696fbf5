package commandcli

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

type run struct {
	code           int
	stdout, stderr string
}

func (r run) json(t *testing.T) map[string]any {
	t.Helper()
	return testkit.VersionedJSON(t, r.stdout)
}

func testEnv(vars map[string]string) *Env {
	return &Env{
		Stdin:  strings.NewReader(""),
		Getenv: func(k string) string { return vars[k] },
		Config: func(c *command.Config) {
			c.KeystoreBackend = testkit.SoftBackend
			c.KeystorePassphrase = []byte("cli test")
			c.JanitorInterval = -1
		},
	}
}

func cli(t *testing.T, vars map[string]string, args ...string) run {
	t.Helper()
	env := testEnv(vars)
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	code := Main(context.Background(), env, args)
	return run{code, out.String(), errb.String()}
}

// Every command's help teaches: usage, an example, --json (the
// transcripts in testdata/script show a few in full).
func TestHelpEverywhere(t *testing.T) {
	c := &ctx{Env: &Env{}}
	for _, b := range builders {
		cmd := b(c)
		r := cli(t, nil, append(strings.Fields(cmd.Path), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: enigm-command "+cmd.Path) || !strings.Contains(r.stdout, "example") || !strings.Contains(r.stdout, "--json") {
			t.Errorf("%s --help: %d\n%s", cmd.Path, r.code, r.stdout)
		}
	}
}

// serve runs `enigm-command serve` in the background and returns its URL.
func serve(t *testing.T, data string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := testEnv(nil)
	out, errb := &testkit.Buffer{}, &testkit.Buffer{}
	env.Stdout, env.Stderr = out, errb
	ready := make(chan string, 1)
	env.Ready = func(addr string) { ready <- addr }
	done := make(chan int, 1)
	go func() { done <- Main(ctx, env, []string{"serve", "--listen", "127.0.0.1:0", "--data", data}) }()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, errb.String())
	}
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
		if !strings.Contains(errb.String(), "all accepted requests finished") {
			t.Errorf("no graceful shutdown in the log:\n%s", errb.String())
		}
	})
	if !strings.Contains(out.String(), "listening on http://"+addr) {
		t.Fatalf("serve did not print its address: %q", out.String())
	}
	return "http://" + addr
}

func key(label string) *hybrid.PrivateKey {
	h := sha512.Sum512([]byte("cli-test:" + label))
	k, err := hybrid.NewPrivateKey(h[:])
	if err != nil {
		panic(err)
	}
	return k
}

// managedAccount creates an invited account with one device through the
// API, as a device would.
func managedAccount(t *testing.T, url, name, orgID, code string, admin *hybrid.PublicKey, p command.Policy) (string, chain.DeviceID) {
	t.Helper()
	acct, dev, err := createManagedAccount(url, name, orgID, code, admin, p)
	if err != nil {
		t.Fatal(err)
	}
	return acct, dev
}

func createManagedAccount(url, name, orgID, code string, admin *hybrid.PublicKey, p command.Policy) (string, chain.DeviceID, error) {
	h := sha512.Sum512([]byte("kem:" + name))
	sk, err := hpke.MLKEM768X25519().DeriveKeyPair(h[:])
	if err != nil {
		return "", chain.DeviceID{}, err
	}
	dev := chain.Device{ID: chain.DeviceID(h[:16]), Name: "laptop", Identity: key(name).Public(), KEM: sk.PublicKey().Bytes(), Level: chain.LevelSoftware}
	g := &chain.Genesis{Device: dev, Recovery: key(name + "/recovery").Public(), Policy: p.ChainPolicy(), Org: &chain.Org{ID: orgID, AdminKey: admin}}
	d, err := chain.NewGenesis(time.Now(), g)
	if err != nil {
		return "", dev.ID, err
	}
	d.Sign(chain.RoleSubject, key(name))
	d.Sign(chain.RoleNewRecovery, key(name+"/recovery"))
	l, err := d.Link()
	if err != nil {
		return "", dev.ID, err
	}
	body, _ := json.Marshal(map[string]string{"name": name, "genesis": base64.StdEncoding.EncodeToString(l.Bytes()), "invite": code})
	resp, err := http.Post(url+"/v1/accounts", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", dev.ID, err
	}
	defer resp.Body.Close()
	var out struct {
		AccountID string `json:"account_id"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 201 {
		return "", dev.ID, fmt.Errorf("creating the account: %d", resp.StatusCode)
	}
	return out.AccountID, dev.ID, nil
}

// The recovery delay a server enforces: 1h by default, 0 only with the
// development flag, which the server logs as a warning at start.
func TestServeRecoveryDelayFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		min  time.Duration
		dev  bool
	}{
		{nil, command.DefaultMinRecoveryDelay, false},
		{[]string{"--min-recovery-delay", "24h"}, 24 * time.Hour, false},
		{[]string{"--dev-allow-zero-recovery-delay"}, 0, true},
		{[]string{"--dev-allow-zero-recovery-delay", "--min-recovery-delay", "0s"}, 0, true},
		{[]string{"--dev-allow-zero-recovery-delay", "--min-recovery-delay", "2s"}, 2 * time.Second, false},
	} {
		got, stderr := serveConfig(t, c.args...)
		if got.MinRecoveryDelay != c.min || got.MaxLinkSkew != command.DefaultMaxLinkSkew {
			t.Errorf("%v: min recovery delay %v, skew %v; want %v, %v", c.args, got.MinRecoveryDelay, got.MaxLinkSkew, c.min, command.DefaultMaxLinkSkew)
		}
		if warned := strings.Contains(stderr, "DEVELOPMENT SERVER"); warned != c.dev {
			t.Errorf("%v: development warning logged = %v, want %v:\n%s", c.args, warned, c.dev, stderr)
		}
	}
}

// inviteAdminKey fetches the invite code's public view from Command at url
// and returns the organisation key it shows.
func inviteAdminKey(t *testing.T, url, code string) *hybrid.PublicKey {
	t.Helper()
	admin, err := fetchInviteAdminKey(url, code)
	if err != nil {
		t.Fatal(err)
	}
	return admin
}

func fetchInviteAdminKey(url, code string) (*hybrid.PublicKey, error) {
	resp, err := http.Get(url + "/v1/invites/" + code)
	if err != nil {
		return nil, err
	}
	var inv struct {
		AdminKey string `json:"admin_key"`
	}
	json.NewDecoder(resp.Body).Decode(&inv)
	resp.Body.Close()
	kb, _ := base64.StdEncoding.DecodeString(inv.AdminKey)
	return hybrid.ParsePublicKey(kb)
}
