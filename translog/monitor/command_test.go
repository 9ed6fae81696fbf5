package monitor_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/commandtest"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/translogtest"
)

// startCommand starts Enigm Command with a log signed by signer.
func startCommand(t testing.TB, signer *translog.Signer) string {
	t.Helper()
	return commandtest.Serve(t, command.Config{DataDir: t.TempDir(), LogSigner: signer, LogInterval: 20 * time.Millisecond,
		KeystoreBackend: testkit.SoftBackend, KeystorePassphrase: []byte("monitor test"), JanitorInterval: -1,
		RateLimits: &command.RateLimits{Disabled: true}})
}

// login makes cl act as the account's device.
func login(cl *client.Client, a *acct) {
	k := keys.Hybrid(a.name)
	cl.SetIdentity(&client.Identity{Account: a.st.Account(), Device: a.dev, Sign: func(purpose string, msg []byte) ([]byte, error) {
		ctx, err := hybrid.Context(purpose)
		if err != nil {
			return nil, err
		}
		s, err := k.Sign(ctx, msg)
		if err != nil {
			return nil, err
		}
		return s.Bytes(), nil
	}})
}

// waitSize waits until the server's checkpoint covers n leaves.
func waitSize(t testing.TB, f monitor.Fetcher, signer *translog.Signer, n uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := f.Checkpoint(context.Background())
		if err == nil {
			if c, err := translog.VerifyCheckpoint(raw, signer.Origin(), signer.VerifierKeys()); err == nil && c.Size >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d leaves within 20s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommandLog: the monitor follows a running Enigm Command's /log/
// (accounts created and links appended through the API, as devices do)
// without a finding, across checkpoints and a restart.
func TestCommandLog(t *testing.T) {
	linkTime = time.Now().UTC().Truncate(time.Second)
	defer func() { linkTime = t0 }()
	signer := translogtest.NewSigner(t, "command.monitor.test/log")
	url := startCommand(t, signer)
	ctx := context.Background()
	cl, err := client.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, ga := genesis(t, "alice")
	bob, gb := genesis(t, "bob")
	// Each link is waited for until a checkpoint covers it, so each is
	// integrated on its own and followed by its map leaf: the sizes are
	// exact (2 leaves per link).
	f := monitor.HTTPFetcher(url+"/log/", nil)
	if _, err := cl.CreateAccount(ctx, "alice", ga, ""); err != nil {
		t.Fatal(err)
	}
	waitSize(t, f, signer, 2)
	if _, err := cl.CreateAccount(ctx, "bob", gb, ""); err != nil {
		t.Fatal(err)
	}
	waitSize(t, f, signer, 4)
	login(cl, alice)
	for i := range 2 {
		if _, err := cl.AppendLink(ctx, alice.next(t)); err != nil {
			t.Fatal(err)
		}
		waitSize(t, f, signer, uint64(6+2*i))
	}
	old, err := f.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := newRun(t, url+"/log/", dir, signer, func(c *monitor.Config) { c.Now = time.Now })
	only(t, r.check())
	if c, n := r.m.Verified(); c.Size != 8 || n != 8 {
		t.Fatalf("verified %d of %d, want 8 (4 links, each with its map leaf)", n, c.Size)
	}
	r.store.Close()

	cl2, _ := client.New(url, nil)
	login(cl2, bob)
	if _, err := cl2.AppendLink(ctx, bob.next(t)); err != nil {
		t.Fatal(err)
	}
	waitSize(t, f, signer, 10)
	if _, err := cl.AppendLink(ctx, alice.next(t)); err != nil {
		t.Fatal(err)
	}
	waitSize(t, f, signer, 12)
	r = newRun(t, url+"/log/", dir, signer, func(c *monitor.Config) { c.Now = time.Now })
	fs := r.check()
	only(t, fs)
	if len(fs) != 1 || fs[0].Kind != monitor.KindCheckpoint || fs[0].PreviousSize != 8 || fs[0].Size != 12 {
		t.Fatalf("after restart: %+v, want one checkpoint event from 8 to 12 leaves", fs)
	}
	if c, n := r.m.Verified(); n != c.Size || n != 12 {
		t.Fatalf("verified %d of %d, want 12", n, c.Size)
	}

	// A proxy in front of the real server: serving the old checkpoint is
	// a rollback; flipping a byte of an entry bundle, for a new monitor,
	// a bad entry bundle.
	var mutate func(path string, b []byte) []byte
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		resp, err := http.Get(url + req.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		w.Write(mutate(req.URL.Path, b))
	}))
	defer proxy.Close()
	mutate = func(path string, b []byte) []byte {
		if path == "/log/checkpoint" {
			return old
		}
		return b
	}
	r.store.Close()
	r = newRun(t, proxy.URL+"/log/", dir, signer, func(c *monitor.Config) { c.Now = time.Now })
	if got := only(t, r.check(), monitor.KindInconsistent)[0]; got.Reason != "rollback" || got.Size != 8 || got.PreviousSize != 12 {
		t.Fatalf("rollback through the proxy: %+v", got)
	}
	mutate = func(path string, b []byte) []byte {
		if strings.HasPrefix(path, "/log/tile/entries/") {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0x40
		}
		return b
	}
	r = newRun(t, proxy.URL+"/log/", t.TempDir(), signer, func(c *monitor.Config) { c.Now = time.Now })
	only(t, r.check(), monitor.KindBadEntryBundle)
}
