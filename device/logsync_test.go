package device_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog/translogtest"
)

// logFront sits in front of a server that publishes its log and lies
// about it on request: the inclusion proof of one link answered "never
// logged" (404) or "not yet" (503), or an old checkpoint served.
type logFront struct {
	mu         sync.Mutex
	hideProof  string // path suffix "/links/<seq>/proof" of the account hidden, "" none
	hideStatus int
	checkpoint []byte              // served as /log/checkpoint when set
	rewrite    func([]byte) []byte // applied to the real /log/checkpoint when set
	chainQs    []string
	proxy      *httputil.ReverseProxy
	backend    *url.URL
}

func (f *logFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hide, status, cp, rewrite := f.hideProof, f.hideStatus, f.checkpoint, f.rewrite
	if strings.HasSuffix(r.URL.Path, "/chain") {
		f.chainQs = append(f.chainQs, r.URL.RawQuery)
	}
	f.mu.Unlock()
	switch {
	case hide != "" && strings.HasSuffix(r.URL.Path, hide):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":{"code":"not_found","message":"hidden by the test"}}`))
	case cp != nil && r.URL.Path == "/log/checkpoint":
		w.Write(cp)
	case rewrite != nil && r.URL.Path == "/log/checkpoint":
		resp, b, ok := testkit.Forward(w, r, f.backend)
		if !ok {
			return
		}
		if resp.StatusCode != http.StatusOK {
			w.WriteHeader(resp.StatusCode)
			w.Write(b)
			return
		}
		w.Write(rewrite(b))
	default:
		f.proxy.ServeHTTP(w, r)
	}
}

func (f *logFront) set(fn func(f *logFront)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// lastChainQuery returns the query of the newest GET …/chain.
func (f *logFront) lastChainQuery() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.chainQs) == 0 {
		return ""
	}
	return f.chainQs[len(f.chainQs)-1]
}

// logWorld is a world whose server publishes its log (a checkpoint every
// 10 ms), behind a logFront.
func logWorld(t testing.TB) (*world, *logFront) {
	t.Helper()
	w := newWorldWith(t, func(c *command.Config) {
		s, err := command.LogSigner(context.Background(), *c)
		if err != nil {
			t.Fatal(err)
		}
		c.LogSigner, c.LogInterval = s, 10*time.Millisecond
	})
	u, _ := url.Parse(w.url)
	f := &logFront{proxy: httputil.NewSingleHostReverseProxy(u), backend: u}
	w.front(t, f)
	return w, f
}

// TestChainSyncRequiresTheLog: against a server that publishes its log,
// the honest lifecycle (account setup, enrollment, rotation, revocation)
// works with every accepted link proven in the device's checkpoint, each
// device waiting for the links it appended to be logged. A device meeting
// the account refuses a link whose inclusion the server cannot prove
// ("never logged") and keeps only the logged prefix; a link the server
// says is not integrated yet is not accepted either, and the error says
// so; a chain sync against a rolled-back log is refused before any link
// is looked at.
func TestChainSyncRequiresTheLog(t *testing.T) {
	ctx := context.Background()
	w, f := logWorld(t)
	a, b := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a"}))
	old := get(t, w.url+"/log/checkpoint")
	enroll(t, ctx, a, b, "alice")
	rotate(t, ctx, b)
	_, devs, head, err := a.Devices(ctx, "")
	if err != nil || len(devs) != 2 || head.Seq != 2 {
		t.Fatalf("devices after enrollment and rotation: %+v %v %v", devs, head, err)
	}
	cp := testkit.Must(a.SyncLog(ctx))
	if cp.Size < 3 {
		t.Fatalf("the device's checkpoint has %d leaves, the three links are not all in it", cp.Size)
	}

	// Carol meets alice; the server hides the inclusion of link 2.
	carolOpts := w.softOptions(t.TempDir()+"/carol", "pw carol")
	carolOpts.LogWait = 300 * time.Millisecond
	carol := w.open(carolOpts)
	testkit.Must(carol.Init(ctx, device.InitOptions{Account: "carol", DeviceName: "c"}))
	f.set(func(f *logFront) { f.hideProof, f.hideStatus = "/links/2/proof", http.StatusNotFound })
	_, err = carol.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrNotLogged) || !strings.Contains(err.Error(), "link 2 of account "+res.Account.String()) {
		t.Fatalf("a link the server does not prove logged: %v, want ErrNotLogged naming link 2", err)
	}
	t.Logf("refused: %v", err)
	// The logged prefix (links 0 and 1) was kept: the next sync asks for
	// the links after seq 1.
	f.set(func(f *logFront) { f.hideProof = "" })
	st := testkit.Must(carol.Sync(ctx, res.Account))
	if st.Head() != head {
		t.Fatalf("carol's head %v, want %v", st.Head(), head)
	}
	if q := f.lastChainQuery(); !strings.Contains(q, "after=1") {
		t.Fatalf("carol's sync after the refusal asked %q, want the links after seq 1", q)
	}

	// A link the server says it has not integrated yet is not accepted
	// (carol waits LogWait, then says so).
	testkit.Must(a.Revoke(ctx, chain.DeviceID(b.Keystore().DeviceID()), device.RevokeOptions{}))
	f.set(func(f *logFront) { f.hideProof, f.hideStatus = "/links/3/proof", http.StatusServiceUnavailable })
	_, err = carol.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrNotLoggedYet) || !strings.Contains(err.Error(), "link 3 of account") || !strings.Contains(err.Error(), "retry in a second") {
		t.Fatalf("a link not integrated yet: %v, want ErrNotLoggedYet naming link 3", err)
	}
	t.Logf("refused: %v", err)
	f.set(func(f *logFront) { f.hideProof = "" })
	if st := testkit.Must(carol.Sync(ctx, res.Account)); st.Head().Seq != 3 {
		t.Fatalf("carol after the revocation was logged: head %v", st.Head())
	}

	// A rolled-back log stops the chain sync (after logReuse, when the
	// device asks for the checkpoint again).
	f.set(func(f *logFront) { f.checkpoint = old })
	time.Sleep(1100 * time.Millisecond)
	if _, err := carol.Sync(ctx, res.Account); !errors.Is(err, client.ErrLogRollback) {
		t.Fatalf("a chain sync against a rolled-back log: %v, want ErrLogRollback", err)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	code, _, b := translogtest.Get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	return b
}

// TestChainSyncRequiresWitnesses: a device configured with a witness
// policy (one witness, here a test cosigner at the shared clock's time,
// maximum age 1 h by default) accepts links only under checkpoints that
// witness cosigned within the hour. With the cosignatures stripped, the
// stored checkpoint stays in force (new links wait, then the error names
// the refused checkpoint and the missing witness); an hour later the
// stored one is stale and the sync is refused outright. The refused
// checkpoints are kept as evidence.
func TestChainSyncRequiresWitnesses(t *testing.T) {
	ctx := context.Background()
	w, f := logWorld(t)
	wit := translogtest.NewCosigner(t, "witness.example")
	cosign := func(b []byte) []byte { return wit.Cosign(b, w.clock.Now().Unix()) }
	f.set(func(f *logFront) { f.rewrite = cosign })
	o := w.softOptions(t.TempDir()+"/a", "pw a")
	o.LogWait = 300 * time.Millisecond
	a := w.open(o)
	policy := "witness W " + wit.Key + "\nquorum W\n"
	testkit.NoErr(t, a.ConfigureLog(device.LogConfig{Policy: policy}))
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a"}))
	b := w.agent("b")
	enroll(t, ctx, a, b, "alice")

	// Stripped: the device keeps its checkpoint; b's rotation waits.
	f.set(func(f *logFront) { f.rewrite = func(b []byte) []byte { return b } })
	rotate(t, ctx, b)
	_, err := a.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrNotLoggedYet) || !errors.Is(err, client.ErrWitness) ||
		!strings.Contains(err.Error(), "has 0 of 1 required witness cosignatures (quorum W): missing W (witness.example)") {
		t.Fatalf("cosignatures stripped: %v", err)
	}
	t.Logf("refused: %v", err)
	f.set(func(f *logFront) { f.rewrite = cosign })
	if st := testkit.Must(a.Sync(ctx, res.Account)); st.Head().Seq != 2 {
		t.Fatalf("cosigned again: head %v", st.Head())
	}

	// A frozen view: the server keeps serving the checkpoint cosigned
	// now; two hours later the device refuses it.
	frozen := cosign(get(t, f.backend.String()+"/log/checkpoint"))
	f.set(func(f *logFront) { f.checkpoint = frozen })
	w.clock.Add(2 * time.Hour)
	time.Sleep(1100 * time.Millisecond) // logReuse
	_, err = a.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrWitness) || !strings.Contains(err.Error(), "is 2h0m0s old, the device allows 1h0m0s") {
		t.Fatalf("a checkpoint cosigned 2h ago: %v", err)
	}
	t.Logf("refused: %v", err)
	ev := testkit.Must(a.RefusedCheckpoints())
	if len(ev) < 2 || !strings.Contains(ev[len(ev)-1].Reason, "old") {
		t.Fatalf("evidence kept: %+v", ev)
	}
	// A pin of other keys than those the device follows is refused.
	other := translogtest.NewSigner(t, "other.example/log")
	if err := a.ConfigureLog(device.LogConfig{Pin: &client.LogPin{Origin: "other.example/log", PublicKeys: other.VerifierKeys()}}); !errors.Is(err, client.ErrLogKeys) {
		t.Fatalf("moving the device to another log: %v", err)
	}
}
