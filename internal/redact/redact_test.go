package redact_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/tpmsim"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/mobile"
	"github.com/enigm/enigm/policy"
)

// secret returns n bytes that look random and are different for each name.
func secret(name string, n int) []byte {
	h := sha512.Sum512([]byte("redact-test/" + name))
	return h[:n]
}

// token returns a token-like ASCII secret.
func token(prefix, name string) string {
	return prefix + base64.RawURLEncoding.EncodeToString(secret(name, 32))
}

func field(t *testing.T, v any, path ...string) []byte {
	t.Helper()
	b, err := redact.Field(v, path...)
	if err != nil {
		t.Fatalf("%v: update the test with the type", err)
	}
	if len(b) == 0 {
		t.Fatalf("%T.%s is empty: nothing to look for", v, strings.Join(path, "."))
	}
	return b
}

type secretCase struct {
	name    string
	exact   string // when set: what every verb prints of the value
	v       any
	secrets [][]byte
}

// Every type that holds secret bytes or a token, or a struct that holds
// one, prints none of it with any verb, as a value, through a pointer, or
// as a struct field; the types formatted with redact.Format print exactly
// their placeholder. Types only their own package can build have the same
// check next to them: platform.secretKeys (TestSecretKeysRedacted),
// pkcs11 login and module (TestLoginsRedacted), keystore kek/keks/liveKey
// (keystore TestNoSecretsInFormat), tpm session and signer (tpm
// TestNoSecretsInFormat), command.orgKeys (TestOrgKeysRedacted),
// api.CreateAccount and api.Token (api TestBodiesRedacted),
// cli.adminClient (TestAdminClientRedacted), device pending and config
// (TestPendingRedacted), cli.demo (TestDemoRedacted), the load tool's
// device, run and enrollment (TestLoadTypesRedacted), the simulated
// phone's keys (simulated TestKeysRedacted).
func TestNoSecretInAnyVerb(t *testing.T) {
	ctx := context.Background()
	var cases []secretCase
	add := func(name string, v any, secrets ...[]byte) {
		exact := ""
		if !strings.Contains(name, " ") {
			exact = name + "(redacted)"
		}
		cases = append(cases, secretCase{name, exact, v, secrets})
	}

	// Keys and codes.
	seed := secret("hybrid", hybrid.SeedSize)
	hk, err := hybrid.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	add("hybrid private key", hk, seed[:32], seed[32:])
	rc, err := chain.GenerateRecoveryCode(bytes.NewReader(secret("recovery", 64)))
	if err != nil {
		t.Fatal(err)
	}
	add("chain.RecoveryCode", rc, field(t, rc, "data"), []byte(strings.Split(rc.Reveal(), "-")[0]))

	// The device side's client, logged in with a bearer token.
	tok := token("edt_", "client")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/auth/challenge":
			json.NewEncoder(w).Encode(map[string]string{"challenge": base64.StdEncoding.EncodeToString(make([]byte, 32))})
		case "/v1/auth/token":
			json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_at": time.Now().Add(time.Hour)})
		default:
			io.WriteString(w, `{"envelopes":[]}`)
		}
	}))
	defer srv.Close()
	cl, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetIdentity(&client.Identity{Sign: func(string, []byte) ([]byte, error) { return []byte("sig"), nil }})
	if _, err := cl.Fetch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if string(field(t, cl, "token")) != tok {
		t.Fatal("the client did not log in: nothing to check")
	}
	add("client.Client", cl, []byte(tok))

	// Backends and their sessions.
	ownerAuth, ekAuth := secret("owner-auth", 20), secret("ek-auth", 20)
	topts := tpm.Options{OwnerAuth: ownerAuth, EndorsementAuth: ekAuth, Open: tpmsim.Open}
	tb, err := tpm.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	add("tpm.Options", topts, ownerAuth, ekAuth)
	add("tpm.Backend", tb, ownerAuth, ekAuth)
	if _, err := tpmsim.Open(); err != nil {
		testenv.Missing(t, "the TPM simulator", err)
	} else {
		pass := secret("tpm-unlock", 24)
		tb, _ := tpm.New(tpm.Options{Open: tpmsim.Open})
		ts := openSession(t, tb, pass)
		add("tpm.session", ts, pass, field(t, ts, "sealAuth"), field(t, ts, "bindAuth"))
		_, signer := testkit.BindingKey(t, ts)
		add("tpm.bindingKey", signer, field(t, ts, "sealAuth"), field(t, ts, "bindAuth"))
	}
	sb := testkit.Must(testkit.SoftBackend("soft"))
	spass := secret("soft-unlock", 24)
	add("soft.session", openSession(t, sb, spass), spass)
	pb, err := platform.New(simulated.New(simulated.StrongBox(0)), platform.Options{KDF: testkit.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	ppass := secret("platform-unlock", 24)
	ps := openSession(t, pb, ppass)
	add("platform.session", ps, ppass, field(t, ps, "session", "keys", "check"), field(t, ps, "session", "keys", "seal"))

	// The keystore: the store, its handles and its wrapping keys.
	kpass := secret("keystore-unlock", 24)
	st, err := keystore.Init(ctx, filepath.Join(t.TempDir(), "home"), sb, kpass, keystore.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetAppAuthorized(true)
	info, err := st.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: keystore.AlgEd25519, Policy: &policy.Requirements{}})
	if err != nil {
		t.Fatal(err)
	}
	ik, err := st.Identity(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	purpose, err := keystore.AppPurpose("redact-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ik.Sign(purpose, nil); err != nil { // loads the material
		t.Fatal(err)
	}
	kek := field(t, st, "keks", "identity", "key")
	edKey := field(t, ik, "lk", "ed")
	add("keystore store", st, kpass, kek, field(t, st, "keks", "kem", "key"), field(t, st, "keks", "session", "key"))
	add("keystore identity key", ik, edKey[:32], kek)

	// The device agent over a keystore, unlocked; the mobile API's handle.
	apass := secret("agent-unlock", 24)
	home := filepath.Join(t.TempDir(), "agent")
	ast, err := keystore.Init(ctx, home, sb, apass, keystore.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ast.Close()
	agent, err := device.Open(device.Options{Home: home, Backend: func(string) (backend.Backend, error) { return sb, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	testkit.NoErr(t, agent.Keystore().Unlock(ctx, apass))
	add("device.Agent", agent, apass, field(t, agent, "ks", "keks", "identity", "key"))
	mpass := secret("mobile-unlock", 24)
	mcfg := mobile.NewConfig()
	mcfg.KDFTime, mcfg.KDFMemoryKiB, mcfg.KDFThreads, mcfg.UserAuth = 1, 64, 1, 0
	mks, err := mobile.Init(filepath.Join(t.TempDir(), "mobile"), simulated.New(simulated.StrongBox(0)), mpass, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer mks.Close()
	add("mobile keystore", mks, mpass, field(t, mks, "s", "Store", "keks", "identity", "key"))

	// Command: its configuration, the server holding it, what it returns.
	dbPass := []byte("db-password-" + token("", "db"))
	cpass := secret("command-keystore", 24)
	cfg := command.Config{DataDir: t.TempDir(), DatabaseURL: "postgres://enigm:" + string(dbPass) + "@db.example/enigm", KeystorePassphrase: cpass}
	add("command.Config", cfg, cpass, dbPass)
	scfg := cfg
	scfg.DatabaseURL, scfg.JanitorInterval, scfg.Logger = "", -1, slog.New(slog.DiscardHandler)
	cs, err := command.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	add("command.Server", cs, cpass, field(t, cs, "challengeKey"))
	adminTok := token("eat_", "admin")
	add("command.OrgCreated", command.OrgCreated{ID: "org", AdminToken: adminTok}, []byte(adminTok))
	invite := token("", "invite")
	add("command.Invited", command.Invited{Code: invite, OrgID: "org"}, []byte(invite))

	// The device agent's results and options that carry codes.
	code := rc.Reveal()
	add("device.RecoverOptions", device.RecoverOptions{Account: "alice", Code: code}, []byte(strings.ReplaceAll(code, "-", ""))[:12], []byte(code[:9]))
	add("device.InitOptions", device.InitOptions{Account: "alice", Invite: invite}, []byte(invite))
	pairing := "7Q2K-9MXC-3HRT-V0PA"
	add("device.EnrollResult", device.EnrollResult{RequestID: "r", PairingCode: pairing}, []byte(pairing))
	add("device.Pending", device.Pending{Kind: "enroll", PairingCode: pairing}, []byte(pairing))

	for _, c := range cases {
		if err := redact.Leak(c.v, c.secrets...); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		for _, verb := range redact.Verbs {
			if out := fmt.Sprintf(verb, c.v); c.exact != "" && out != c.exact {
				t.Errorf("%s: %s prints %d bytes, not %q", c.name, verb, len(out), c.exact)
			}
		}
	}
}

func openSession(t *testing.T, b backend.Backend, pass []byte) backend.Session {
	t.Helper()
	state, err := b.Provision(context.Background(), pass)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Open(context.Background(), state, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		b.Destroy(context.Background(), state)
	})
	return s
}
