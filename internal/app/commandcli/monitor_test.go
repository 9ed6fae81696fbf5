package commandcli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/mldsa"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/internal/clikit/scripttest"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// logWorld is a running Command with a log, behind a proxy that can turn
// hostile, for the monitor's transcripts.
type logWorld struct {
	upstream string
	signer   *translog.Signer
	accounts int

	mu    sync.Mutex
	mode  string // "", "rollback", "tamper"
	first []byte // the first checkpoint the proxy served
}

func (w *logWorld) proxy(rw http.ResponseWriter, r *http.Request) {
	resp, err := http.Get(w.upstream + r.URL.Path)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	w.mu.Lock()
	if r.URL.Path == "/log/checkpoint" && w.first == nil {
		w.first = b
	}
	switch {
	case w.mode == "rollback" && r.URL.Path == "/log/checkpoint":
		b = w.first
	case w.mode == "tamper" && strings.HasPrefix(r.URL.Path, "/log/tile/entries/"):
		b = bytes.Clone(b)
		b[len(b)-1] ^= 1
	}
	w.mu.Unlock()
	rw.WriteHeader(resp.StatusCode)
	rw.Write(b)
}

// addAccounts creates n accounts through the API, one at a time, each
// waited for until the log's checkpoint covers it: so each genesis link
// is integrated on its own and followed by its map leaf, and the log has
// exactly 2 leaves per account.
func (w *logWorld) addAccounts(n int) error {
	cl, err := client.New(w.upstream, nil)
	if err != nil {
		return err
	}
	for range n {
		w.accounts++
		name := fmt.Sprintf("mon%d", w.accounts)
		l, _, err := monGenesis(name)
		if err != nil {
			return err
		}
		if _, err := cl.CreateAccount(context.Background(), name, l, ""); err != nil {
			return err
		}
		if err := w.waitSize(uint64(2 * w.accounts)); err != nil {
			return err
		}
	}
	return nil
}

// waitSize waits until the log's checkpoint has at least n leaves.
func (w *logWorld) waitSize(n uint64) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(w.upstream + "/log/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c, err := translog.VerifyCheckpoint(b, w.signer.Origin(), w.signer.VerifierKeys()); err == nil && c.Size >= n {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no checkpoint of %d leaves within 20s", n)
}

// monGenesis returns the genesis link of a test account and its state.
func monGenesis(name string) (*chain.Link, *chain.State, error) {
	h := sha512.Sum512([]byte("id:" + name))
	dev := chain.Device{ID: chain.DeviceID(h[:16]), Name: "laptop", Identity: key(name).Public(), KEM: testKEM(name), Level: chain.LevelSoftware}
	d, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: dev, Recovery: key(name + "/recovery").Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		return nil, nil, err
	}
	d.Sign(chain.RoleSubject, key(name))
	d.Sign(chain.RoleNewRecovery, key(name+"/recovery"))
	l, err := d.Link()
	if err != nil {
		return nil, nil, err
	}
	st, err := chain.Apply(nil, l, time.Now())
	return l, st, err
}

// monRotate returns the next link of a test account (a KEM rotation by
// its one device) and the state after it.
func monRotate(name string, st *chain.State) (*chain.Link, *chain.State, error) {
	h := sha512.Sum512([]byte("id:" + name))
	d, err := chain.NewDraft(st, time.Now(), &chain.RotateKeys{ID: chain.DeviceID(h[:16]), KEM: testKEM(fmt.Sprintf("%s/%d", name, st.Head().Seq+1))})
	if err != nil {
		return nil, nil, err
	}
	if err := d.SignDevice(chain.DeviceID(h[:16]), key(name)); err != nil {
		return nil, nil, err
	}
	l, err := d.Link()
	if err != nil {
		return nil, nil, err
	}
	ns, err := chain.Apply(st, l, time.Now())
	return l, ns, err
}

// startMapLog starts a log in memory (translog over
// translogtest.MemStorage, not Command) with alice (two links) and bob
// (one), each link integrated with its map leaf, whose served checkpoint
// is signed through one more leaf (translogtest.SignThrough): a map leaf
// at its own index whose root is the honest one ("honest"), gives alice
// her older head ("stale"), is random bytes ("random") or leaves alice
// out ("missing"); or carol's genesis link, so that the checkpoint does
// not end in a map leaf ("nomap"). It returns the URL and the log keys.
func startMapLog(mode string) (string, []string, func(), error) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, nil, err
	}
	pq, err := mldsa.GenerateKey(mldsa.MLDSA44())
	if err != nil {
		return "", nil, nil, err
	}
	signer, err := translog.NewSigner("maplog.enigm.test/log", ed, pq)
	if err != nil {
		return "", nil, nil, err
	}
	st := translogtest.NewMemStorage()
	lg := translog.New(st, signer)
	ctx := context.Background()
	ga, sa, err := monGenesis("alice")
	if err != nil {
		return "", nil, nil, err
	}
	gb, _, err := monGenesis("bob")
	if err != nil {
		return "", nil, nil, err
	}
	a1, _, err := monRotate("alice", sa)
	if err != nil {
		return "", nil, nil, err
	}
	for _, l := range []*chain.Link{ga, gb, a1} {
		st.Add(l.Bytes())
		if _, err := lg.Integrate(ctx); err != nil {
			return "", nil, nil, err
		}
	}
	leaves, honest, err := translogtest.Leaves(ctx, st, lg)
	if err != nil {
		return "", nil, nil, err
	}
	alice := smap.Key(ga.Hash())
	var root smap.Hash
	switch mode {
	case "honest":
		root = honest.Root()
	case "stale":
		honest.Set(alice, smap.Value{Seq: 0, Head: ga.Hash()})
		root = honest.Root()
	case "random":
		rand.Read(root[:])
	case "missing":
		var without smap.Tree
		for _, l := range leaves {
			if e, ok := translog.LinkEntry(l); ok && e.Key != alice {
				without.Set(e.Key, e.Value)
			}
		}
		root = without.Root()
	}
	last := translog.MapLeaf(uint64(len(leaves)), root)
	if mode == "nomap" {
		gc, _, err := monGenesis("carol")
		if err != nil {
			return "", nil, nil, err
		}
		last = gc.Bytes()
	}
	signed, _, err := translogtest.SignThrough(ctx, st, lg, signer, last)
	if err != nil {
		return "", nil, nil, err
	}
	h := http.StripPrefix("/log", lg.Handler())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log/checkpoint" {
			w.Write(signed)
			return
		}
		h.ServeHTTP(w, r)
	}))
	return srv.URL, signer.VerifierKeys(), srv.Close, nil
}

func testKEM(name string) []byte {
	h := sha512.Sum512([]byte("kem:" + name))
	sk, err := hpke.MLKEM768X25519().DeriveKeyPair(h[:])
	if err != nil {
		panic(err)
	}
	return sk.PublicKey().Bytes()
}

// startLogWorld starts Command on data with its log, behind a proxy, and
// returns the world, the proxy's URL and what stops them.
func startLogWorld(data string) (*logWorld, string, func(), error) {
	cfg := command.Config{DataDir: data, RateLimits: &command.RateLimits{Disabled: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	testConfig(&cfg)
	s, err := command.LogSigner(context.Background(), cfg)
	if err != nil {
		return nil, "", nil, err
	}
	cfg.LogSigner, cfg.LogInterval = s, 20*time.Millisecond
	srv, err := command.New(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	up := httptest.NewServer(srv.Handler())
	w := &logWorld{upstream: up.URL, signer: s}
	px := httptest.NewServer(http.HandlerFunc(w.proxy))
	return w, px.URL, func() { px.Close(); up.Close(); srv.Close() }, nil
}

// TestMonitorFollows: without --once the monitor checks every
// --interval, printing a checkpoint line for each new checkpoint, until
// it is interrupted (exit 130).
func TestMonitorFollows(t *testing.T) {
	w, url, stop, err := startLogWorld(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := w.addAccounts(1); err != nil {
		t.Fatal(err)
	}
	env := testEnv(nil)
	out, errb := &testkit.Buffer{}, &testkit.Buffer{}
	env.Stdout, env.Stderr = out, errb
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, env, []string{"monitor", url, "--state", t.TempDir(), "--origin", w.signer.Origin(), "--interval", "20ms"})
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 20s:\n%s\n%s", what, out.String(), errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(`"size":2,`) // the genesis link and its map leaf
	if err := w.addAccounts(2); err != nil {
		t.Fatal(err)
	}
	waitFor(`"size":6,`)
	cancel(clikit.ErrInterrupted)
	if code := <-done; code != clikit.ExitInterrupted {
		t.Fatalf("exit %d after the interrupt, want 130:\n%s", code, errb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, `{"version":1,"kind":"checkpoint",`) {
			t.Fatalf("a line that is not a checkpoint event on an honest log: %s", line)
		}
	}
}

// TestMonitorScripts runs the monitor's transcripts (testdata/monitor),
// which have a server with a log:
//
//	logserver DATA N   starts Command on DATA with its log, N accounts in
//	                   it, behind a proxy; sets $ENIGM_SERVER (the proxy),
//	                   $LOG_ORIGIN, $LOG_KEY_ED and $LOG_KEY_PQ
//	accounts N         adds N accounts and waits for the checkpoint
//	hostile MODE       the proxy serves the first checkpoint it served
//	                   (rollback), flips a bit of every entry bundle
//	                   (tamper), or is honest (off)
//	pause DURATION     sleeps
//	maplog MODE        starts a log in memory whose checkpoint ends in a
//	                   lying map leaf (startMapLog: honest, stale, random,
//	                   missing, nomap); sets $MAPLOG (its URL),
//	                   $MAPLOG_KEY_ED and $MAPLOG_KEY_PQ
func TestMonitorScripts(t *testing.T) {
	cmds := scripttest.Cmds()
	worlds := map[*testscript.TestScript]*logWorld{}
	var mu sync.Mutex
	world := func(ts *testscript.TestScript) *logWorld {
		mu.Lock()
		defer mu.Unlock()
		w := worlds[ts]
		if w == nil {
			ts.Fatalf("no logserver started")
		}
		return w
	}
	cmds["logserver"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: logserver DATA N")
		}
		w, px, stop, err := startLogWorld(ts.MkAbs(args[0]))
		ts.Check(err)
		ts.Defer(stop)
		s := w.signer
		mu.Lock()
		worlds[ts] = w
		mu.Unlock()
		var n int
		fmt.Sscan(args[1], &n)
		ts.Check(w.addAccounts(n))
		ts.Setenv("ENIGM_SERVER", px)
		ts.Setenv("LOG_ORIGIN", s.Origin())
		ts.Setenv("LOG_KEY_ED", s.VerifierKeys()[0])
		ts.Setenv("LOG_KEY_PQ", s.VerifierKeys()[1])
	}
	cmds["accounts"] = func(ts *testscript.TestScript, neg bool, args []string) {
		var n int
		if neg || len(args) != 1 {
			ts.Fatalf("usage: accounts N")
		}
		fmt.Sscan(args[0], &n)
		ts.Check(world(ts).addAccounts(n))
	}
	cmds["hostile"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: hostile rollback|tamper|off")
		}
		w := world(ts)
		w.mu.Lock()
		defer w.mu.Unlock()
		switch args[0] {
		case "rollback", "tamper":
			w.mode = args[0]
		case "off":
			w.mode = ""
		default:
			ts.Fatalf("usage: hostile rollback|tamper|off")
		}
	}
	cmds["pause"] = func(ts *testscript.TestScript, neg bool, args []string) {
		d, err := time.ParseDuration(strings.Join(args, ""))
		if neg || len(args) != 1 || err != nil {
			ts.Fatalf("usage: pause DURATION")
		}
		time.Sleep(d)
	}
	cmds["maplog"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 || !slices.Contains([]string{"honest", "stale", "random", "missing", "nomap"}, args[0]) {
			ts.Fatalf("usage: maplog honest|stale|random|missing|nomap")
		}
		url, keys, stop, err := startMapLog(args[0])
		ts.Check(err)
		ts.Defer(stop)
		ts.Setenv("MAPLOG", url)
		ts.Setenv("MAPLOG_KEY_ED", keys[0])
		ts.Setenv("MAPLOG_KEY_PQ", keys[1])
	}
	testscript.Run(t, testscript.Params{Dir: "testdata/monitor", Cmds: cmds, RequireExplicitExec: true})
}
