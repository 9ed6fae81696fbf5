package command

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// sealer seals message forms in a keystore of its own. Command checks no
// signature (the devices do), so the identity key that signs need not be
// the sending device's key in its chain: these tests look only at what
// Command can check without keys.
type sealer struct {
	ks *keystore.Store
	id *keystore.IdentityKey
}

func newSealer(t testing.TB) *sealer {
	t.Helper()
	b := testkit.Must(testkit.SoftBackend("soft"))
	ks := testkit.Must(keystore.Init(context.Background(), filepath.Join(t.TempDir(), "ks"), b, []byte("pw"),
		keystore.InitOptions{Options: keystore.Options{Backend: testkit.SoftBackend}}))
	t.Cleanup(func() { ks.Close() })
	ks.SetAppAuthorized(true)
	ks.SetAssociation(policy.Associated, nil)
	info := testkit.Must(ks.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true}))
	return &sealer{ks: ks, id: testkit.Must(ks.Identity(info.ID))}
}

// seal returns the message form of a message from device from of account
// a to the recipients.
func (s *sealer) seal(t testing.TB, a *tacct, from *tdev, m envelope.Message, to []envelope.Recipient) []byte {
	t.Helper()
	return s.sealOut(t, a, from, m, to).Message
}

// sealOut is seal returning both encodings.
func (s *sealer) sealOut(t testing.TB, a *tacct, from *tdev, m envelope.Message, to []envelope.Recipient) *envelope.Outgoing {
	t.Helper()
	info := testkit.Must(s.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true}))
	sk := testkit.Must(s.ks.Session(info.ID))
	defer sk.Destroy()
	if m.Kind == 0 {
		m.Kind = envelope.KindMessage
	}
	return testkit.Must(envelope.SealMessage(sk, envelope.From{Account: a.st.Account(), Device: from.id, Identity: s.id}, m, to))
}

func (e *env) sendForm(token string, msg []byte) *resp {
	e.t.Helper()
	return e.doCBOR("POST", "/v1/messages", token, &api.SendMessage{Message: msg})
}

// aliceAndBob sets up accounts alice (devices A1, A2) and bob (B1, B2).
func (e *env) aliceAndBob() (a *tacct, A1, A2 *tdev, b *tacct, B1, B2 *tdev) {
	A1, A2 = newDev("alice/A1"), newDev("alice/A2")
	B1, B2 = newDev("bob/B1"), newDev("bob/B2")
	a = e.newAccount("alice", A1, chain.DefaultPolicy())
	a.add(A2, A1)
	b = e.newAccount("bob", B1, chain.DefaultPolicy())
	b.add(B2, B1)
	return a, A1, A2, b, B1, B2
}

// to lists the active devices of the accounts as recipients, except skip.
func to(skip *tdev, accts ...*tacct) []envelope.Recipient {
	var out []envelope.Recipient
	for _, a := range accts {
		out = append(out, envelope.Eligible(a.st, skip.id)...)
	}
	return out
}

// The API's bound on a message form is envelope's.
func TestMessageFormLimit(t *testing.T) {
	if api.MaxMessageForm != envelope.MaxMessage {
		t.Fatalf("api.MaxMessageForm %d, envelope.MaxMessage %d", api.MaxMessageForm, envelope.MaxMessage)
	}
	if api.MaxMessageForm+64 > MaxRequestSize {
		t.Fatalf("a message form of %d bytes does not fit a request of %d", api.MaxMessageForm, MaxRequestSize)
	}
}

// One message form to three devices of two accounts: Command splits it
// and queues each device exactly the envelope envelope.Split cuts for it,
// with the kind, call id and sender of the signed header; the answer
// comes back as CBOR.
func TestRelayMessageForm(t *testing.T) {
	e := newEnv(t)
	a, A1, A2, b, B1, B2 := e.aliceAndBob()
	s := newSealer(t)

	rcpts := to(A1, b, a)
	msg := s.seal(t, a, A1, envelope.Message{Conversation: b.st.Account(), Body: []byte("to all")}, rcpts)
	r := e.want(e.sendForm(a.token(A1), msg), http.StatusAccepted, "")
	var res api.SendResult
	r.cbor(t, &res)
	testkit.NoErr(t, res.Validate())
	if want := []string{B1.id.String(), B2.id.String(), A2.id.String()}; !slices.Equal(res.Accepted, want) || len(res.Rejected) != 0 {
		t.Fatalf("accepted %v rejected %v, want %v", res.Accepted, res.Rejected, want)
	}
	dels := testkit.Must(envelope.Split(msg))
	for i, pair := range []struct {
		acct *tacct
		dev  *tdev
	}{{b, B1}, {b, B2}, {a, A2}} {
		got := pair.acct.fetch(pair.dev)
		if len(got) != 1 || got[0].FromAccount != a.id || got[0].FromDevice != A1.id.String() || got[0].Kind != api.KindMessage || got[0].CallID != "" {
			t.Fatalf("%s got %+v", pair.dev.label, got)
		}
		if !bytes.Equal(got[0].Ciphertext, dels[i].Bytes) {
			t.Fatalf("%s was queued another envelope than Split cuts for it", pair.dev.label)
		}
		p := testkit.Must(envelope.Parse(got[0].Ciphertext))
		if p.For(pair.acct.st.Account(), pair.dev.id) != nil || p.Recipients != 3 {
			t.Fatalf("%s: an envelope for %s, %d recipients", pair.dev.label, p.ToDevice, p.Recipients)
		}
	}
	if got := a.fetch(A1); len(got) != 0 {
		t.Fatalf("the sender queued %d envelopes for itself", len(got))
	}

	// A call: its kind and call id come from the signed header.
	call := s.seal(t, a, A1, envelope.Message{Kind: envelope.KindCall, CallID: "call-1", Conversation: b.st.Account()}, to(A1, b))
	e.want(e.sendForm(a.token(A1), call), http.StatusAccepted, "")
	if got := b.fetch(B1); len(got) != 2 || got[1].Kind != api.KindCall || got[1].CallID != "call-1" {
		t.Fatalf("call envelope: %+v", got)
	}

	// The old JSON request of one ciphertext per device is still queued,
	// and the metrics tell the two bodies apart (to see when older clients
	// are gone).
	e.want(e.do("POST", "/v1/messages", a.token(A1), map[string]any{"kind": "message", "envelopes": []env1{envTo(b, B2, "old client")}}), http.StatusAccepted, "")
	if got := b.fetch(B2); len(got) != 3 || string(got[2].Ciphertext) != "old client" {
		t.Fatalf("B2 got %d envelopes, the last of %d bytes", len(got), len(got[len(got)-1].Ciphertext))
	}
	m := string(e.want(e.do("GET", "/metrics", "", nil), 200, "").body)
	for _, want := range []string{`enigm_command_sends_total{body="message_form"} 2`, `enigm_command_sends_total{body="envelopes"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A message form Command must refuse is refused whole, with its own code,
// and nothing already queued is lost or changed.
func TestRelayRefusesBadMessageForms(t *testing.T) {
	e := newEnv(t)
	a, A1, A2, b, B1, B2 := e.aliceAndBob()
	s := newSealer(t)
	tok := a.token(A1)
	conv := envelope.Message{Conversation: b.st.Account(), Body: []byte("queued first")}
	good := s.seal(t, a, A1, conv, to(A1, b, a))
	e.want(e.sendForm(tok, good), http.StatusAccepted, "")
	queued := func() map[string][]byte {
		out := map[string][]byte{}
		for _, p := range []struct {
			acct *tacct
			dev  *tdev
		}{{b, B1}, {b, B2}, {a, A2}} {
			envs, err := e.srv.store.Envelopes(t.Context(), p.acct.id, p.dev.id.String(), 1000)
			testkit.NoErr(t, err)
			for _, env := range envs {
				out[p.dev.label] = append(out[p.dev.label], env.Ciphertext...)
			}
		}
		return out
	}
	before := queued()

	ghost := envelope.Recipient{Account: b.st.Account(), Device: newDev("bob/ghost").id, KEM: testKEM("ghost"), Head: b.st.Head()}
	stranger := newDev("nobody/N")
	strangerAcct := chain.AccountID(sha256.Sum256([]byte("no such account")))
	offChain := to(A1, b)
	for i := range offChain {
		offChain[i].Head.Hash = chain.Hash(sha256.Sum256([]byte("another link")))
	}
	ahead := to(A1, b)
	for i := range ahead {
		ahead[i].Head.Seq += 5
	}
	big := make([]byte, api.MaxMessageForm+1)
	copy(big, good)
	for _, c := range []struct {
		desc   string
		msg    []byte
		status int
		code   string
	}{
		{"truncated by a few bytes", good[:len(good)-7], 400, api.CodeMalformedMessage},
		{"truncated to its first 100 bytes", good[:100], 400, api.CodeMalformedMessage},
		{"bytes after the message", append(append([]byte(nil), good...), 0), 400, api.CodeMalformedMessage},
		{"not CBOR", []byte("hello"), 400, api.CodeMalformedMessage},
		{"a device twice", testkit.EditMessageForm(t, good, func(f *testkit.MessageForm) { f.Entries = append(f.Entries, f.Entries[0]) }), 400, api.CodeMalformedMessage},
		{"no entries", testkit.EditMessageForm(t, good, func(f *testkit.MessageForm) { f.Entries = nil }), 400, api.CodeMalformedMessage},
		{"version 3", testkit.EditMessageForm(t, good, func(f *testkit.MessageForm) { f.Version = 3 }), 400, api.CodeMalformedMessage},
		{"an entry cut short", testkit.EditMessageForm(t, good, func(f *testkit.MessageForm) { f.Entries[1] = f.Entries[1][:40] }), 400, api.CodeMalformedMessage},
		{"a device not in the recipient's chain", s.seal(t, a, A1, conv, append(to(A1, b), ghost)), 422, api.CodeUnknownRecipient},
		{"an account this server does not hold", s.seal(t, a, A1, conv, append(to(A1, b),
			envelope.Recipient{Account: strangerAcct, Device: stranger.id, KEM: testKEM("nobody"), Head: chain.Head{Seq: 0, Hash: chain.Hash(strangerAcct)}})), 422, api.CodeUnknownRecipient},
		{"a head with another hash than the chain's", s.seal(t, a, A1, conv, offChain), 409, api.CodeNotOnChain},
		{"a head beyond the chain's", s.seal(t, a, A1, conv, ahead), 409, api.CodeNotOnChain},
		{"another device of the sender's account as sender", s.seal(t, a, A2, conv, to(A2, b)), 403, api.CodeSenderMismatch},
		{"a device of another account as sender", s.seal(t, b, B1, conv, to(B1, a)), 403, api.CodeSenderMismatch},
		{"larger than a message form may be", big, 413, "too_large"},
	} {
		r := e.sendForm(tok, c.msg)
		if r.code != c.status || r.errCode() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.desc, r.code, r.body, c.status, c.code)
		}
		if got := queued(); !equalQueues(got, before) {
			t.Fatalf("%s: the queues changed", c.desc)
		}
	}
	// The old request type as CBOR is not a message form.
	e.want(e.doCBOR("POST", "/v1/messages", tok, []byte{0xa1, 0x01, 0x65, 'h', 'e', 'l', 'l', 'o'}), 400, "bad_request")
	if !equalQueues(queued(), before) {
		t.Fatal("the queues changed")
	}
}

func equalQueues(x, y map[string][]byte) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if !bytes.Equal(v, y[k]) {
			return false
		}
	}
	return true
}

// A device revoked after the sender verified its chain: its entry is
// dropped (rejected, not_active), never queued, and the message reaches
// the devices still active. Refusing the whole message would only make
// the sender seal again without it, and the revoked device gets nothing
// either way; Command holds its entry nowhere.
func TestRelayMessageFormAfterRevocation(t *testing.T) {
	e := newEnv(t)
	A1 := newDev("alice/A1")
	B1, B2 := newDev("bob/B1"), newDev("bob/B2")
	a := e.newAccount("alice", A1, chain.DefaultPolicy())
	b := e.newAccount("bob", B1, chain.DefaultPolicy())
	b.add(B2, B1)
	s := newSealer(t)
	stale := to(A1, b) // B1 and B2, at the head before the revocation
	e.want(b.post(B1, b.revokeLink(B1, B2)), http.StatusCreated, "")
	msg := s.seal(t, a, A1, envelope.Message{Conversation: b.st.Account(), Body: []byte("after")}, stale)
	r := e.want(e.sendForm(a.token(A1), msg), http.StatusAccepted, "")
	var res api.SendResult
	r.cbor(t, &res)
	if !slices.Equal(res.Accepted, []string{B1.id.String()}) || len(res.Rejected) != 1 || res.Rejected[0].DeviceID != B2.id.String() || res.Rejected[0].Reason != "not_active" {
		t.Fatalf("accepted %v rejected %v", res.Accepted, res.Rejected)
	}
	left, err := e.srv.store.Envelopes(t.Context(), b.id, B2.id.String(), 1000)
	testkit.NoErr(t, err)
	if len(left) != 0 {
		t.Fatalf("%d envelopes queued for the revoked device", len(left))
	}
	if got := b.fetch(B1); len(got) != 1 {
		t.Fatalf("B1 got %d envelopes", len(got))
	}
}

// BenchmarkRelaySend times what Command does with one message to N
// devices, the message form (CBOR, split by envelope.Split) against the
// same N envelopes as older clients send them (JSON, base64), alternating
// within each iteration (the order flips every iteration): decode,
// checks, the store's write of the N envelopes (SQLite), the answer; both
// bodies are encoded once, ahead of the loop.
func BenchmarkRelaySend(b *testing.B) {
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			e := newEnv(b)
			A1 := newDev("alice/A1")
			a := e.newAccount("alice", A1, chain.DefaultPolicy())
			B := []*tdev{newDev("bob/B0")}
			bob := e.newAccount("bob", B[0], chain.DefaultPolicy())
			for i := 1; i < n; i++ {
				B = append(B, newDev(fmt.Sprintf("bob/B%d", i)))
				bob.add(B[i], B[0])
			}
			out := newSealer(b).sealOut(b, a, A1, envelope.Message{Conversation: bob.st.Account(), Body: bytes.Repeat([]byte{'m'}, 1024)}, to(A1, bob))
			var envs []env1
			for _, s := range out.Envelopes {
				envs = append(envs, env1{AccountID: bob.id, DeviceID: s.To.Device.String(), Ciphertext: enc64(s.Bytes)})
			}
			tok := a.token(A1)
			// Both bodies encoded once, ahead: only Command's work is timed.
			form := testkit.Must(api.MarshalCBOR(&api.SendMessage{Message: out.Message}))
			old := testkit.Must(json.Marshal(map[string]any{"kind": "message", "envelopes": envs}))
			var tForm, tOld time.Duration
			for i := 0; b.Loop(); i++ {
				for k := range 2 {
					t0 := time.Now()
					var r *resp
					if (i+k)%2 == 0 {
						r = e.doCBOR("POST", "/v1/messages", tok, form)
						tForm += time.Since(t0)
					} else {
						r = e.do("POST", "/v1/messages", tok, old)
						tOld += time.Since(t0)
					}
					if r.code != http.StatusAccepted {
						b.Fatalf("%d %s", r.code, r.body)
					}
				}
			}
			iters := float64(b.N)
			b.ReportMetric(float64(tForm.Nanoseconds())/iters, "form-ns/op")
			b.ReportMetric(float64(tOld.Nanoseconds())/iters, "perdevice-ns/op")
			b.ReportMetric(float64(tForm)/float64(tOld), "form/perdevice")
		})
	}
}
