package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

const testOrigin = "monitor.enigm.test/log"

var keys = &testkit.Keys{Domain: "enigm-monitor-test"}

// t0 is the time of the tests' worlds; linkTime that of every link they
// make (a test against Command sets it to now, which Command requires).
var (
	t0       = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	linkTime = t0
)

// acct is an account of a test world: its state and its one device.
type acct struct {
	name string
	st   *chain.State
	dev  chain.DeviceID
	n    int // KEM rotations made
}

func device(label string) chain.Device {
	var id chain.DeviceID
	copy(id[:], keys.Seed("id:"+label, chain.DeviceIDSize))
	return chain.Device{ID: id, Name: "laptop", Identity: keys.Hybrid(label).Public(), KEM: keys.KEM(label).Bytes(), Level: chain.LevelSoftware}
}

// genesis returns a new account's genesis link.
func genesis(t testing.TB, name string) (*acct, *chain.Link) {
	t.Helper()
	dev := device(name)
	d := testkit.Must(chain.NewGenesis(linkTime, &chain.Genesis{Device: dev, Recovery: keys.Hybrid(name + "/recovery").Public(), Policy: chain.DefaultPolicy()}))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, keys.Hybrid(name)))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, keys.Hybrid(name+"/recovery")))
	l := testkit.Must(d.Link())
	st := testkit.Must(chain.Apply(nil, l, linkTime))
	return &acct{name: name, st: st, dev: dev.ID}, l
}

// rotate returns the account's next link (a KEM rotation), without
// applying it.
func (a *acct) rotate(t testing.TB) *chain.Link {
	t.Helper()
	a.n++
	d := testkit.Must(chain.NewDraft(a.st, linkTime, &chain.RotateKeys{ID: a.dev, KEM: keys.KEM(fmt.Sprintf("%s/kem%d", a.name, a.n)).Bytes()}))
	testkit.NoErr(t, d.SignDevice(a.dev, keys.Hybrid(a.name)))
	return testkit.Must(d.Link())
}

// next returns the next link and applies it.
func (a *acct) next(t testing.TB) *chain.Link {
	t.Helper()
	l := a.rotate(t)
	a.st = testkit.Must(chain.Apply(a.st, l, linkTime))
	return l
}

// hostLog is a log in memory served over HTTP, whose responses a test
// may rewrite (a hostile server).
type hostLog struct {
	t      testing.TB
	signer *translog.Signer
	st     *translogtest.MemStorage
	log    *translog.Log
	srv    *httptest.Server

	mu      sync.Mutex
	rewrite func(path string, body []byte) []byte // nil: serve as is
	handler http.Handler                          // nil: log.Handler()
}

func newHostLog(t testing.TB, signer *translog.Signer) *hostLog {
	h := &hostLog{t: t, signer: signer, st: translogtest.NewMemStorage()}
	h.log = translog.New(h.st, signer)
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostLog) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	rw, hd := h.rewrite, h.handler
	h.mu.Unlock()
	if hd == nil {
		hd = h.log.Handler()
	}
	hd = http.StripPrefix("/log", hd)
	if rw == nil {
		hd.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, r)
	w.WriteHeader(rec.Code)
	w.Write(rw(r.URL.Path, rec.Body.Bytes()))
}

func (h *hostLog) set(rw func(string, []byte) []byte) {
	h.mu.Lock()
	h.rewrite = rw
	h.mu.Unlock()
}

// add appends leaves and integrates them.
func (h *hostLog) add(leaves ...[]byte) {
	h.t.Helper()
	h.st.Add(leaves...)
	if _, err := h.log.Integrate(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostLog) addLinks(ls ...*chain.Link) {
	h.t.Helper()
	for _, l := range ls {
		h.add(l.Bytes())
	}
}

// signThrough makes the log sign a tree that ends in leaf and serve
// that checkpoint (translogtest.SignThrough); it returns leaf's index.
func (h *hostLog) signThrough(leaf []byte) uint64 {
	h.t.Helper()
	signed, k, err := translogtest.SignThrough(context.Background(), h.st, h.log, h.signer, leaf)
	if err != nil {
		h.t.Fatal(err)
	}
	h.set(func(path string, body []byte) []byte {
		if path == "/log/checkpoint" {
			return signed
		}
		return body
	})
	return k
}

// leaves returns the leaves of the log's checkpoint and their map.
func (h *hostLog) leaves() ([][]byte, *smap.Tree) {
	h.t.Helper()
	ls, m, err := translogtest.Leaves(context.Background(), h.st, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	return ls, m
}

// lieInMap makes the log sign a tree that ends in a map leaf at its own
// index (signThrough) whose root lie gives from the honest map of the
// leaves before it. It returns the leaf's index.
func (h *hostLog) lieInMap(lie func(honest *smap.Tree) smap.Hash) uint64 {
	h.t.Helper()
	ls, m := h.leaves()
	return h.signThrough(translog.MapLeaf(uint64(len(ls)), lie(m)))
}

func (h *hostLog) checkpoint() []byte {
	h.t.Helper()
	cp, _, err := h.log.Checkpoint(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return cp
}

// run is one monitor over a state directory, with its findings.
type run struct {
	t        testing.TB
	m        *monitor.Monitor
	store    *monitor.Store
	findings []monitor.Finding
	clock    *testkit.Clock
	dir      string
}

type runOpt func(*monitor.Config)

func newRun(t testing.TB, prefix, dir string, signer *translog.Signer, opts ...runOpt) *run {
	t.Helper()
	r := &run{t: t, clock: testkit.NewClock(t0.Add(time.Hour)), dir: dir}
	st, err := monitor.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.store = st
	cfg := monitor.Config{Fetcher: monitor.HTTPFetcher(prefix, nil), Store: st, Origin: signer.Origin(), LogKeys: signer.VerifierKeys(),
		Now: r.clock.Now, Report: func(f monitor.Finding) { r.findings = append(r.findings, f) }}
	for _, o := range opts {
		o(&cfg)
	}
	r.m, err = monitor.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// check runs one Check and returns the findings it reported.
func (r *run) check() []monitor.Finding {
	r.t.Helper()
	n := len(r.findings)
	if err := r.m.Check(context.Background()); err != nil {
		r.t.Fatalf("Check: %v", err)
	}
	return r.findings[n:]
}

// only returns the problems among fs, failing unless they are exactly
// of the kinds given, in order.
func only(t testing.TB, fs []monitor.Finding, kinds ...monitor.Kind) []monitor.Finding {
	t.Helper()
	var got []monitor.Finding
	for _, f := range fs {
		if f.IsProblem() {
			got = append(got, f)
		}
	}
	ok := len(got) == len(kinds)
	for i := 0; ok && i < len(kinds); i++ {
		ok = got[i].Kind == kinds[i]
	}
	if !ok {
		var s string
		for _, f := range got {
			s += fmt.Sprintf("\n  %s (%s): %s", f.Kind, f.Reason, f.Message)
		}
		t.Fatalf("findings:%s\nwant kinds %v", s, kinds)
	}
	return got
}
