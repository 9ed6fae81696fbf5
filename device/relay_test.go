package device_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
)

// rewriter sits in front of the server and rewrites the message form of
// every send (POST /v1/messages as CBOR) with change, when it is set.
type rewriter struct {
	mu      sync.Mutex
	change  func(t *testing.T, msg []byte) []byte
	backend *url.URL
	t       *testing.T
	sends   int
}

func (rw *rewriter) set(change func(t *testing.T, msg []byte) []byte) {
	rw.mu.Lock()
	rw.change = change
	rw.mu.Unlock()
}

func (rw *rewriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw.mu.Lock()
	change := rw.change
	rw.mu.Unlock()
	if r.Method == "POST" && r.URL.Path == "/v1/messages" {
		if api.MediaType(r.Header.Get("Content-Type")) != api.MediaCBOR {
			rw.t.Errorf("the device sent its message as %q, not as a message form", r.Header.Get("Content-Type"))
		}
		rw.mu.Lock()
		rw.sends++
		rw.mu.Unlock()
		if change != nil {
			raw, _ := io.ReadAll(r.Body)
			var q api.SendMessage
			testkit.NoErr(rw.t, api.UnmarshalCBOR(raw, &q))
			q.Message = change(rw.t, q.Message)
			raw = testkit.Must(api.MarshalCBOR(&q))
			r.Body = io.NopCloser(bytes.NewReader(raw))
			r.ContentLength = int64(len(raw))
			r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
		}
	}
	resp, body, ok := testkit.Forward(w, r, rw.backend)
	if ok {
		testkit.Reply(w, resp, body)
	}
}

// edit decodes a message form, applies f and encodes it again.
func edit(f func(t *testing.T, m *testkit.MessageForm)) func(t *testing.T, msg []byte) []byte {
	return func(t *testing.T, msg []byte) []byte {
		return testkit.EditMessageForm(t, msg, func(m *testkit.MessageForm) { f(t, m) })
	}
}

// The message form on the wire: the device sends its message once, the
// relay splits it, and every device of the peer opens its own envelope.
// A form rewritten on the way is refused: by Command when it can tell
// without keys (truncated, a device twice: nothing queued, the sender is
// told with the code), otherwise by every receiver (a shared header or
// body changed, entries reordered: each device checks the one signature,
// refuses and acknowledges it, and opens nothing).
func TestSendMessageForm(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	rw := &rewriter{backend: w.serverURL(), t: t}
	w.front(t, rw)
	a, b1, b2 := w.agent("a"), w.agent("b1"), w.agent("b2")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "a"}))
	testkit.Must(b1.Init(ctx, device.InitOptions{Account: "bob", DeviceName: "b1"}))
	enroll(t, ctx, b1, b2, "bob")

	sent := testkit.Must(a.Send(ctx, "bob", []byte("honest")))
	if len(sent.Accepted) != 2 || len(sent.Rejected) != 0 || rw.sends != 1 {
		t.Fatalf("send: %+v in %d requests", sent, rw.sends)
	}
	for _, r := range []*device.Agent{b1, b2} {
		got := testkit.Must(r.Receive(ctx))
		if len(got.Messages) != 1 || string(got.Messages[0].Body) != "honest" || len(got.Skipped) != 0 {
			t.Fatalf("honest message: %+v", got)
		}
	}

	// Refused by Command: the sender gets the code, nobody gets anything.
	for _, c := range []struct {
		desc   string
		change func(*testing.T, []byte) []byte
	}{
		{"truncated", func(_ *testing.T, m []byte) []byte { return m[:len(m)-9] }},
		{"a device twice", edit(func(_ *testing.T, m *testkit.MessageForm) { m.Entries = append(m.Entries, m.Entries[1]) })},
	} {
		rw.set(c.change)
		_, err := a.Send(ctx, "bob", []byte(c.desc))
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != api.CodeMalformedMessage {
			t.Fatalf("%s: %v, want 400 %s", c.desc, err, api.CodeMalformedMessage)
		}
		for _, r := range []*device.Agent{b1, b2} {
			if got := testkit.Must(r.Receive(ctx)); len(got.Messages)+len(got.Skipped)+len(got.Deferred) != 0 {
				t.Fatalf("%s: a receiver got %+v", c.desc, got)
			}
		}
	}

	// Queued (Command holds no key to tell), refused by every receiver.
	for _, c := range []struct {
		desc   string
		change func(*testing.T, []byte) []byte
	}{
		{"the shared header's message id", edit(func(t *testing.T, m *testkit.MessageForm) {
			// Header = {1: 4, 2: kind, 3: id (bstr 16), …}: its id starts at byte 7.
			if len(m.Header) < 23 || !bytes.Equal(m.Header[5:7], []byte{0x03, 0x50}) {
				t.Errorf("the header does not start as version 4's does: %x", m.Header[:7])
				return
			}
			m.Header[7] ^= 1
		})},
		{"the shared body", edit(func(_ *testing.T, m *testkit.MessageForm) { m.Body[len(m.Body)-1] ^= 1 })},
		{"the entries reordered", edit(func(_ *testing.T, m *testkit.MessageForm) { m.Entries[0], m.Entries[1] = m.Entries[1], m.Entries[0] })},
	} {
		rw.set(c.change)
		res, err := a.Send(ctx, "bob", []byte("tampered: "+c.desc))
		if err != nil || len(res.Accepted) != 2 {
			t.Fatalf("%s: send %+v %v", c.desc, res, err)
		}
		for i, r := range []*device.Agent{b1, b2} {
			got := testkit.Must(r.Receive(ctx))
			if len(got.Messages) != 0 || len(got.Skipped) != 1 || !strings.Contains(got.Skipped[0].Reason, envelope.ErrSender.Error()) {
				t.Fatalf("%s: receiver b%d got %+v, want the envelope refused as %q", c.desc, i+1, got, envelope.ErrSender)
			}
		}
	}

	// Honest again: nothing above left anything behind.
	rw.set(nil)
	testkit.Must(a.Send(ctx, "bob", []byte("honest again")))
	for _, r := range []*device.Agent{b1, b2} {
		got := testkit.Must(r.Receive(ctx))
		if len(got.Messages) != 1 || string(got.Messages[0].Body) != "honest again" || len(got.Skipped) != 0 {
			t.Fatalf("honest message after the attacks: %+v", got)
		}
	}
}
