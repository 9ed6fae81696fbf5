package command

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// ---- a deterministic test world -----------------------------------------

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// keys are the test world's keys, derived from labels.
var keys = testkit.Keys{Domain: "enigm-command-test"}

func testKey(label string) *hybrid.PrivateKey { return keys.Hybrid(label) }

func testKEM(label string) []byte { return keys.KEM(label).Bytes() }

// tdev is a test device: deterministic keys from its label.
type tdev struct {
	label string
	id    chain.DeviceID
	gen   int // identity/KEM key generation (rotation)
	level chain.Level
}

func newDev(label string) *tdev {
	h := sha256.Sum256([]byte("id:" + label))
	return &tdev{label: label, id: chain.DeviceID(h[:16]), level: chain.LevelSoftware}
}

func (d *tdev) key() *hybrid.PrivateKey { return testKey(fmt.Sprintf("%s/%d", d.label, d.gen)) }
func (d *tdev) kem() []byte             { return testKEM(fmt.Sprintf("%s/%d", d.label, d.gen)) }

func (d *tdev) device() chain.Device {
	return chain.Device{ID: d.id, Name: "device " + d.label, Identity: d.key().Public(), KEM: d.kem(), Level: d.level}
}

// ---- the server under test ----------------------------------------------

type env struct {
	t     testing.TB
	srv   *Server
	clock *testkit.Clock
	cfg   Config
	logs  *testkit.Buffer
	dsn   string
}

// newEnv starts a server on a new SQLite database.
// withLimits turns rate limiting on for newEnv: DefaultRateLimits, changed
// by each of adjust.
func withLimits(adjust ...func(*RateLimits)) func(*Config) {
	return func(c *Config) {
		rl := DefaultRateLimits()
		for _, f := range adjust {
			f(&rl)
		}
		c.RateLimits = &rl
	}
}

func newEnv(t testing.TB, opts ...func(*Config)) *env {
	return newEnvDSN(t, storetest.SQLiteDSN(t), opts...)
}

func newEnvDSN(t testing.TB, dsn string, opts ...func(*Config)) *env {
	t.Helper()
	clock := testkit.NewClock(t0)
	logs := &testkit.Buffer{}
	cfg := Config{
		DataDir:            t.TempDir(),
		KeystorePassphrase: []byte("test passphrase"),
		KeystoreBackend:    testkit.SoftBackend,
		Logger:             slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:              clock.Now,
		JanitorInterval:    -1,
		RateLimits:         &RateLimits{Disabled: true},
		// Test servers are development servers: short and zero recovery
		// delays keep the workflow tests small. The production default
		// (DefaultMinRecoveryDelay) is tested in time_test.go.
		DevAllowZeroRecoveryDelay: true,
	}
	if store.IsPostgresURL(dsn) {
		cfg.DatabaseURL = dsn
	} else {
		cfg.DatabaseURL = ""
		cfg.DataDir = strings.TrimSuffix(dsn, "/"+DBFile)
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &env{t: t, srv: srv, clock: clock, cfg: cfg, logs: logs, dsn: dsn}
}

func (e *env) logText() string { return e.logs.String() }

// resp is a decoded response.
type resp struct {
	code int
	hdr  http.Header
	body []byte
	m    map[string]any
}

func (r *resp) errCode() string {
	if e, ok := r.m["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r *resp) chainError() string {
	if e, ok := r.m["error"].(map[string]any); ok {
		s, _ := e["chain_error"].(string)
		return s
	}
	return ""
}

func (r *resp) str(k string) string { s, _ := r.m[k].(string); return s }

func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends a request to the handler; body is JSON-encoded unless it is a
// string or []byte (sent as is).
func (e *env) do(method, path, token string, body any) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.serve(req)
}

// serve has the handler answer req.
func (e *env) serve(req *http.Request) *resp {
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	r := &resp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
	json.Unmarshal(r.body, &r.m)
	return r
}

// want checks the status (and error code when given).
func (e *env) want(r *resp, code int, errCode string) *resp {
	e.t.Helper()
	if r.code != code || (errCode != "" && r.errCode() != errCode) {
		e.t.Fatalf("got %d %s, want %d %s", r.code, r.body, code, errCode)
	}
	return r
}

// ---- accounts as devices see them ---------------------------------------

type tacct struct {
	e      *env
	name   string
	id     string
	st     *chain.State
	recov  *hybrid.PrivateKey
	tokens map[chain.DeviceID]string
}

var b64 = base64.StdEncoding

func enc64(b []byte) string { return b64.EncodeToString(b) }

// newAccount sets up an account with first as its first device.
// twoDevices is account name with its first device A and a second device
// B that A approved.
func (e *env) twoDevices(name string) (a *tacct, A, B *tdev) {
	e.t.Helper()
	A, B = newDev(name+"/A"), newDev(name+"/B")
	a = e.newAccount(name, A, chain.DefaultPolicy())
	a.add(B, A)
	return a, A, B
}

// alice is the usual start of a test: the account alice under the
// default policy, with its first device A.
func (e *env) alice() (a *tacct, A *tdev) {
	e.t.Helper()
	A = newDev("alice/A")
	return e.newAccount("alice", A, chain.DefaultPolicy()), A
}

// aliceAB is alice with a second device B that A added.
func (e *env) aliceAB() (a *tacct, A, B *tdev) {
	e.t.Helper()
	a, A = e.alice()
	B = newDev("alice/B")
	a.add(B, A)
	return a, A, B
}

func (e *env) newAccount(name string, first *tdev, p chain.Policy) *tacct {
	e.t.Helper()
	a, r := e.tryAccount(name, first, p, nil, "")
	e.want(r, http.StatusCreated, "")
	return a
}

func (e *env) tryAccount(name string, first *tdev, p chain.Policy, org *chain.Org, invite string) (*tacct, *resp) {
	e.t.Helper()
	recov := testKey("recovery:" + name)
	g := &chain.Genesis{Device: first.device(), Recovery: recov.Public(), Policy: p, Org: org}
	d, err := chain.NewGenesis(e.clock.Now(), g)
	if err != nil {
		e.t.Fatal(err)
	}
	testkit.NoErr(e.t, d.Sign(chain.RoleSubject, first.key()))
	testkit.NoErr(e.t, d.Sign(chain.RoleNewRecovery, recov))
	l, err := d.Link()
	if err != nil {
		e.t.Fatal(err)
	}
	body := map[string]any{"name": name, "genesis": enc64(l.Bytes())}
	if invite != "" {
		body["invite"] = invite
	}
	r := e.do("POST", "/v1/accounts", "", body)
	a := &tacct{e: e, name: name, id: r.str("account_id"), recov: recov, tokens: map[chain.DeviceID]string{}}
	if r.code == http.StatusCreated {
		a.sync()
	}
	return a, r
}

// sync fetches and verifies the whole chain, as a client does.
func (a *tacct) sync() {
	a.e.t.Helper()
	r := a.e.want(a.e.do("GET", "/v1/accounts/"+a.id+"/chain", "", nil), 200, "")
	var body struct {
		Links []string `json:"links"`
	}
	r.decode(a.e.t, &body)
	var links []*chain.Link
	for _, s := range body.Links {
		b, _ := b64.DecodeString(s)
		l, err := chain.ParseLink(b)
		testkit.NoErr(a.e.t, err)
		links = append(links, l)
	}
	st, err := chain.VerifyChain(nil, links, a.e.clock.Now())
	if err != nil {
		a.e.t.Fatalf("client verification: %v", err)
	}
	a.st = st
}

func (a *tacct) head() api.Head { return api.HeadOf(a.st.Head()) }

// login obtains a token for d by the challenge protocol.
func (a *tacct) login(d *tdev) string {
	a.e.t.Helper()
	tok, r := a.tryLogin(d)
	a.e.want(r, 200, "")
	a.tokens[d.id] = tok
	return tok
}

func (a *tacct) tryLogin(d *tdev) (string, *resp) {
	a.e.t.Helper()
	body, r := a.answerChallenge(d)
	if body == nil {
		return "", r
	}
	r = a.e.do("POST", "/v1/auth/token", "", body)
	return r.str("token"), r
}

// answerChallenge asks for a login challenge for d and signs it: the body
// for /v1/auth/token and the challenge's answer, or nil and the refusal.
func (a *tacct) answerChallenge(d *tdev) (map[string]string, *resp) {
	a.e.t.Helper()
	r := a.e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": d.id.String()})
	if r.code != 200 {
		return nil, r
	}
	c, _ := b64.DecodeString(r.str("challenge"))
	acct, _ := accountID("", a.id)
	sig, err := d.key().Sign(AuthContext, AuthMessage(acct, d.id, c))
	testkit.NoErr(a.e.t, err)
	return map[string]string{"account_id": a.id, "device_id": d.id.String(), "challenge": r.str("challenge"), "signature": enc64(sig.Bytes())}, r
}

func (a *tacct) token(d *tdev) string {
	if t, ok := a.tokens[d.id]; ok {
		return t
	}
	return a.login(d)
}

// post appends a device-built link.
func (a *tacct) post(by *tdev, l *chain.Link) *resp {
	return a.e.do("POST", "/v1/accounts/"+a.id+"/links", a.token(by), map[string]string{"link": enc64(l.Bytes())})
}

// draft starts a link at the client's verified head.
func (a *tacct) draft(b chain.Body) *chain.Draft {
	a.e.t.Helper()
	d, err := chain.NewDraft(a.st, a.e.clock.Now(), b)
	testkit.NoErr(a.e.t, err)
	return d
}

func link(t testing.TB, d *chain.Draft) *chain.Link {
	t.Helper()
	l, err := d.Link()
	testkit.NoErr(t, err)
	return l
}

func (a *tacct) revokeLink(by, target *tdev) *chain.Link {
	d := a.draft(&chain.RevokeDevice{ID: target.id, Reason: chain.ReasonLost})
	testkit.NoErr(a.e.t, d.SignDevice(by.id, by.key()))
	return link(a.e.t, d)
}

func (a *tacct) rotateKEMLink(d *tdev, gen int) *chain.Link {
	dr := a.draft(&chain.RotateKeys{ID: d.id, KEM: testKEM(fmt.Sprintf("%s/rot%d", d.label, gen))})
	testkit.NoErr(a.e.t, dr.SignDevice(d.id, d.key()))
	return link(a.e.t, dr)
}

// ---- enrollment as the devices run it -----------------------------------

type enrolling struct {
	a       *tacct
	dev     *tdev
	typ     string
	body    chain.Body
	raw     []byte
	rid     string
	pairing string
}

func nonce(label string) [chain.NonceSize]byte {
	return [chain.NonceSize]byte(keys.Seed("nonce:"+label, 32))
}

// requestAdd sends dev's add_device request.
func (a *tacct) requestAdd(dev *tdev) *enrolling {
	a.e.t.Helper()
	en, r := a.tryRequest(dev, nil)
	a.e.want(r, http.StatusCreated, "")
	return en
}

func (a *tacct) tryRequest(dev *tdev, old *tdev) (*enrolling, *resp) {
	a.e.t.Helper()
	n := nonce(dev.label)
	code := "pair-" + dev.label
	en := &enrolling{a: a, dev: dev, pairing: code, typ: "add_device"}
	if old == nil {
		en.body = &chain.AddDevice{Device: dev.device(), Nonce: n, PairingHash: chain.PairingHash(n, code)}
	} else {
		en.typ = "replace_device"
		en.body = &chain.ReplaceDevice{Old: old.id, Device: dev.device(), Nonce: n, PairingHash: chain.PairingHash(n, code)}
	}
	raw, err := chain.EncodeBody(en.body)
	testkit.NoErr(a.e.t, err)
	en.raw = raw
	r := a.e.do("POST", "/v1/accounts/"+a.id+"/enrollments", "", map[string]string{"type": en.typ, "body": enc64(raw)})
	en.rid = r.str("request_id")
	return en, r
}

// statement is the approval statement at the client's head.
func (en *enrolling) statement() (chain.Approval, chain.LinkType) {
	d := en.a.draft(en.body)
	st, _ := d.Approval()
	t, _ := enrollType(en.typ)
	return st, t
}

// approve has approver sign the request at the client's head.
func (en *enrolling) approve(approver *tdev) *resp {
	en.a.e.t.Helper()
	st, t := en.statement()
	sg, err := chain.SignApproval(st, t, chain.RoleDevice, approver.id, approver.key())
	testkit.NoErr(en.a.e.t, err)
	return en.a.e.do("POST", "/v1/enrollments/"+en.rid+"/approve", en.a.token(approver),
		map[string]any{"head": en.a.head(), "signature": enc64(sg.Sig)})
}

// buildLink builds the link from the approvals the server holds.
func (en *enrolling) buildLink() *chain.Link {
	e := en.a.e
	e.t.Helper()
	r := e.want(e.do("GET", "/v1/enrollments/"+en.rid, "", nil), 200, "")
	var j api.Enrollment
	r.decode(e.t, &j)
	st, _ := en.statement()
	d := en.a.draft(en.body)
	for _, ap := range j.Approvals {
		s := chain.Signature{Approval: &st, Sig: ap.Signature, Role: chain.RoleOrg}
		if ap.Role == "device" {
			s.Role = chain.RoleDevice
			id, _ := deviceID("", ap.Signer)
			s.Signer = id
		}
		d.AddSignature(s)
	}
	testkit.NoErr(e.t, d.Sign(chain.RoleSubject, en.dev.key()))
	return link(e.t, d)
}

func (en *enrolling) complete() *resp {
	return en.a.e.do("POST", "/v1/enrollments/"+en.rid+"/complete", "", map[string]string{"link": enc64(en.buildLink().Bytes())})
}

func (en *enrolling) state() string {
	r := en.a.e.do("GET", "/v1/enrollments/"+en.rid, "", nil)
	return r.str("state")
}

// add runs a whole unmanaged enrollment of dev approved by approver.
func (a *tacct) add(dev, approver *tdev) {
	a.e.t.Helper()
	en := a.requestAdd(dev)
	a.e.want(en.approve(approver), 200, "")
	a.e.want(en.complete(), http.StatusCreated, "")
	a.sync()
}

// devices returns the server's device list of the account by id.
func (a *tacct) devices() map[string]api.Device {
	a.e.t.Helper()
	r := a.e.want(a.e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 200, "")
	var body struct {
		Devices []api.Device `json:"devices"`
	}
	r.decode(a.e.t, &body)
	out := map[string]api.Device{}
	for _, d := range body.Devices {
		out[d.DeviceID] = d
	}
	return out
}

// ---- organisations ------------------------------------------------------

type torg struct {
	*OrgCreated
}

func (e *env) newOrg(name string, p Policy) *torg {
	e.t.Helper()
	cfg := e.cfg
	cfg.Store = e.srv.store
	o, err := CreateOrg(context.Background(), cfg, OrgSpec{Name: name, Policy: p})
	testkit.NoErr(e.t, err)
	return &torg{o}
}

func (e *env) invite(o *torg, account string) string {
	e.t.Helper()
	cfg := e.cfg
	cfg.Store = e.srv.store
	inv, err := CreateInvite(context.Background(), cfg, o.ID, account, time.Hour)
	testkit.NoErr(e.t, err)
	return inv.Code
}

// tryManaged asks to create account name, invited into o with code.
func (e *env) tryManaged(o *torg, name string, first *tdev, code string) (*tacct, *resp) {
	e.t.Helper()
	return e.tryAccount(name, first, o.Policy.ChainPolicy(), &chain.Org{ID: o.ID, AdminKey: o.AdminKey}, code)
}

// newManaged sets up an account invited into o.
func (e *env) newManaged(o *torg, name string, first *tdev) *tacct {
	e.t.Helper()
	code := e.invite(o, name)
	a, r := e.tryManaged(o, name, first, code)
	e.want(r, http.StatusCreated, "")
	return a
}

// waitListening waits until the server is subscribed to head
// announcements (PostgreSQL); a no-op without them.
func (e *env) waitListening() {
	e.t.Helper()
	if e.srv.heads == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.srv.heads.wait(ctx, func(h *headWatch) bool { return h.live }); err != nil {
		e.t.Fatalf("the head listener did not subscribe: %v", err)
	}
}

// waitAnnounced waits until the server has processed the announcement of
// account's head at seq or later (PostgreSQL); a no-op without
// announcements. It bounds a wait for an event, it does not time anything.
func (e *env) waitAnnounced(account string, seq uint64) {
	e.t.Helper()
	e.waitNotice(account, seq, func(got uint64) bool { return got >= seq })
}

// waitAnnouncedExactly is waitAnnounced for a head at exactly seq: a head
// moved back is announced like any other change.
func (e *env) waitAnnouncedExactly(account string, seq uint64) {
	e.t.Helper()
	e.waitNotice(account, seq, func(got uint64) bool { return got == seq })
}

func (e *env) waitNotice(account string, seq uint64, ok func(got uint64) bool) {
	e.t.Helper()
	if e.srv.heads == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.srv.heads.wait(ctx, func(h *headWatch) bool {
		n, seen := h.notices[account]
		return seen && n.head != nil && ok(n.head.Seq)
	})
	if err != nil {
		e.t.Fatalf("no announcement of account %s at seq %d: %v", account, seq, err)
	}
}
