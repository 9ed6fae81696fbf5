package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// racer sits in front of the server and, for the first `left` revocations
// it forwards, first lets a stolen device append a link of its own, so that
// the revocation arrives against a head that has moved (409 conflict): the
// race a stolen device plays to keep itself from being revoked.
type racer struct {
	next  http.Handler
	left  atomic.Int32
	raced atomic.Int32
	move  func() error
}

func (h *racer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "POST" && h.left.Load() > 0 {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req api.LinkRequest
		if api.MediaType(r.Header.Get("Content-Type")) == api.MediaCBOR {
			api.UnmarshalCBOR(body, &req)
		} else {
			json.Unmarshal(body, &req)
		}
		if l, err := chain.ParseLink(req.Link); err == nil && l.Type() == chain.TypeRevokeDevice && h.left.Add(-1) >= 0 {
			if err := h.move(); err != nil {
				http.Error(w, "racer: "+err.Error(), http.StatusBadGateway)
				return
			}
			h.raced.Add(1)
		}
	}
	h.next.ServeHTTP(w, r)
}

// A stolen, still active device that appends a link each time the owner's
// revocation is about to arrive makes the owner's first attempts lose the
// compare-and-append; the owner's device rebuilds the revocation on the
// new head and wins.
func TestRevokeWinsAgainstHeadRacing(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	rc := &racer{next: httputil.NewSingleHostReverseProxy(w.serverURL())}
	w.front(t, rc)

	owner, stolen := w.agent("owner"), w.agent("stolen")
	testkit.Must(owner.Init(ctx, device.InitOptions{Account: "race"}))
	enroll(t, ctx, owner, stolen, "race")
	sid := chain.DeviceID(stolen.Keystore().DeviceID())
	rc.move = func() error { _, _, err := stolen.Rotate(ctx); return err }
	rc.left.Store(3)

	testkit.Must(owner.Revoke(ctx, sid, device.RevokeOptions{}))
	if rc.raced.Load() != 3 {
		t.Fatalf("the stolen device moved the head %d times, want 3", rc.raced.Load())
	}
	st := testkit.Must(owner.Status(ctx, true))
	if st.Head.Seq != 1+3+1 { // add, three rotations, the revocation
		t.Fatalf("head after the race: %+v", st.Head)
	}
	if _, err := stolen.Receive(ctx); err == nil {
		t.Fatal("the stolen device still receives after its revocation")
	}
}
