package device_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
)

// syncLogSize syncs a's log until its checkpoint has at least n leaves.
func syncLogSize(t *testing.T, a *device.Agent, n uint64) translog.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := a.SyncLog(context.Background())
		if err == nil && c.Size >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified checkpoint of %d leaves within 10s: %+v %v", n, c, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentSyncLog: a device verifies the checkpoints of a server whose
// log keys live in its keystore, keeps the newest in agent.db across a
// restart, and refuses a server (here a proxy in front of the real one)
// that serves an older checkpoint it recorded: a rollback.
func TestAgentSyncLog(t *testing.T) {
	ctx := context.Background()
	var signer *translog.Signer
	w := newWorldWith(t, func(c *command.Config) {
		s, err := command.LogSigner(ctx, *c)
		if err != nil {
			t.Fatal(err)
		}
		signer, c.LogSigner, c.LogInterval = s, s, 10*time.Millisecond
	})
	real := w.url
	var replay atomic.Pointer[[]byte] // when set, the proxy serves it as the checkpoint
	target, _ := http.NewRequest("GET", real, nil)
	proxy := httputil.NewSingleHostReverseProxy(target.URL)
	w.front(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if old := replay.Load(); old != nil && r.URL.Path == "/log/checkpoint" {
			rw.Write(*old)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	home := filepath.Join(t.TempDir(), "a")
	o := w.softOptions(home, "pw a")
	a := w.open(o)
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "log-alice", DeviceName: "a"}))
	first := syncLogSize(t, a, 1)
	resp, err := http.Get(real + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if c, err := translog.VerifyCheckpoint(old, signer.Origin(), signer.VerifierKeys()); err != nil || c != first {
		t.Fatalf("recorded checkpoint %+v %v, want %+v", c, err, first)
	}

	// A second account grows the log; the device follows.
	b := w.agent("b")
	testkit.Must(b.Init(ctx, device.InitOptions{Account: "log-bob", DeviceName: "b"}))
	syncLogSize(t, a, 2)
	// After a restart the stored checkpoint is the reference.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = w.open(o)
	if c, err := a.SyncLog(ctx); err != nil || c.Size < 2 {
		t.Fatalf("after a restart: %+v %v", c, err)
	}
	replay.Store(&old)
	if _, err := a.SyncLog(ctx); !errors.Is(err, client.ErrLogRollback) {
		t.Fatalf("a rolled-back checkpoint: %v, want ErrLogRollback", err)
	}
}
