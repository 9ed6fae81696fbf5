package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
)

// twoAccounts returns sender a (account A, with second device a2) and
// recipients b, b2 (account B), and seals one message from a to every
// other device of both accounts: b, b2, a2 in that order.
func twoAccounts(t *testing.T) (a, a2, b, b2 *party, sealed []envelope.Sealed) {
	t.Helper()
	a, a2, b, b2, to := fourDevices(t)
	var err error
	sealed, err = envelope.Seal(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id},
		envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("to all"), SentAt: time.Now()}, to)
	if err != nil || len(sealed) != 3 {
		t.Fatalf("seal: %v (%d envelopes)", err, len(sealed))
	}
	return a, a2, b, b2, sealed
}

// fourDevices returns accounts A (devices a, a2) and B (b, b2) and the
// recipients of a message from a: b, b2, a2 in that order.
func fourDevices(t *testing.T) (a, a2, b, b2 *party, to []envelope.Recipient) {
	t.Helper()
	a, a2, b, b2 = newParty(t, 1), newParty(t, 4), newParty(t, 2), newParty(t, 5)
	purposeAddDevice(t, a, a2)
	a2.state = a.state
	purposeAddDevice(t, b, b2)
	b2.state = b.state
	return a, a2, b, b2, append(envelope.Eligible(b.state, chain.DeviceID{}), envelope.Eligible(a.state, a.dev)...)
}

// envelopeFor returns the envelope sealed to party p.
func envelopeFor(t *testing.T, sealed []envelope.Sealed, p *party) []byte {
	t.Helper()
	for _, s := range sealed {
		if s.To.Device == p.dev {
			return s.Bytes
		}
	}
	t.Fatalf("no envelope for device %s", p.dev)
	return nil
}

// One message to three devices in two accounts: one signature, each
// device opens its own envelope (found by name, no trial decryption), and
// the envelope names both chain heads the sender used.
func TestOneSignatureManyDevices(t *testing.T) {
	a, a2, b, b2, sealed := twoAccounts(t)
	var sig []byte
	for _, to := range []*party{b, b2, a2} {
		raw := envelopeFor(t, sealed, to)
		p := testkit.Must(envelope.Parse(raw))
		if p.Version != 4 || p.Recipients != 3 {
			t.Fatalf("version %d, %d recipients; want 4 and 3", p.Version, p.Recipients)
		}
		if p.Heads[a.state.Account()] != a.state.Head() || p.Heads[b.state.Account()] != b.state.Head() || len(p.Heads) != 2 {
			t.Fatalf("heads %v; want A at %d and B at %d", p.Heads, a.state.Head().Seq, b.state.Head().Seq)
		}
		body, err := open(p, to, a)
		if err != nil || string(body) != "to all" {
			t.Fatalf("device %s: %q %v", to.dev, body, err)
		}
		w := testkit.Must(envelope.DecodeWire(raw))
		if sig == nil {
			sig = w.Sig
		} else if !bytes.Equal(sig, w.Sig) {
			t.Fatal("the envelopes of one message carry different signatures")
		}
		// Every other device's KEM key is not this envelope's.
		for _, other := range []*party{b, b2, a2} {
			if other != to {
				if _, err := p.OpenKey(other.kems(), time.Minute); !errors.Is(err, envelope.ErrNoKey) {
					t.Fatalf("device %s's KEM key matched the envelope of %s: %v", other.dev, to.dev, err)
				}
			}
		}
	}
}

// A relay that rewrites a device's envelope — another device's entry at
// this index, this entry at another index, another device's sealed key or
// account in this entry, an entry dropped, added or changed in the digest
// list — is refused at Verify, before any key is installed.
func TestRelayRewritesEntries(t *testing.T) {
	a, _, b, b2, sealed := twoAccounts(t)
	wb := testkit.Must(envelope.DecodeWire(envelopeFor(t, sealed, b)))
	wb2 := testkit.Must(envelope.DecodeWire(envelopeFor(t, sealed, b2)))
	eb2 := testkit.Must(envelope.DecodeEntry(wb2.Entry))
	entry := func(w *envelope.Wire, edit func(e *envelope.Entry)) {
		e := *testkit.Must(envelope.DecodeEntry(w.Entry))
		edit(&e)
		w.Entry = envelope.EncodeWire(&e)
	}
	cases := map[string]func(w *envelope.Wire){
		"b2's entry in b's envelope":     func(w *envelope.Wire) { w.Entry = wb2.Entry },
		"b2's sealed key under b's name": func(w *envelope.Wire) { entry(w, func(e *envelope.Entry) { e.Sealed = eb2.Sealed }) },
		"b's entry naming the other account": func(w *envelope.Wire) {
			entry(w, func(e *envelope.Entry) { e.Account ^= 1 })
		},
		"b's entry at b2's index": func(w *envelope.Wire) { w.Index = wb2.Index },
		"last digest dropped":     func(w *envelope.Wire) { w.Digests = w.Digests[:len(w.Digests)-32] },
		"a digest added":          func(w *envelope.Wire) { w.Digests = append(bytes.Clone(w.Digests), make([]byte, 32)...) },
		"another device's digest changed": func(w *envelope.Wire) {
			w.Digests = bytes.Clone(w.Digests)
			w.Digests[32*int(wb2.Index)] ^= 1
		},
		"digests reordered": func(w *envelope.Wire) {
			d := bytes.Clone(w.Digests)
			i, j := 32*int(w.Index), 32*int(wb2.Index)
			copy(d[i:i+32], w.Digests[j:j+32])
			copy(d[j:j+32], w.Digests[i:i+32])
			w.Digests, w.Index = d, wb2.Index
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			w := *wb
			edit(&w)
			p, err := envelope.Parse(envelope.EncodeWire(&w))
			if err != nil {
				if !errors.Is(err, envelope.ErrMalformed) {
					t.Fatalf("refused with %v, want ErrMalformed", err)
				}
				return
			}
			if err := p.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
				t.Fatalf("verified: %v", err)
			}
		})
	}
	// The untouched envelope still verifies (the cases above fail for what
	// they change).
	if err := testkit.Must(envelope.Parse(envelope.EncodeWire(wb))).Verify(a.state); err != nil {
		t.Fatal(err)
	}
	// b's envelope delivered to b2 is not for b2.
	if err := testkit.Must(envelope.Parse(envelope.EncodeWire(wb))).For(b2.state.Account(), b2.dev); !errors.Is(err, envelope.ErrNotForMe) {
		t.Fatalf("b's envelope at b2: %v", err)
	}
}

// A recipient knows the message key. It cannot forward the message to a
// device that was not a recipient under the sender's signature: the new
// entry is not among the signed digests, and adding it changes them. A
// device of an account the message names no head for (c) cannot even be
// named (an entry's account is an index into the signed heads); one of a
// named account (the sender's own device a) is refused at Verify.
func TestRecipientCannotForwardUnderSendersSignature(t *testing.T) {
	a, _, b, _, sealed := twoAccounts(t)
	c := newParty(t, 3)
	raw := envelopeFor(t, sealed, b)
	p := testkit.Must(envelope.Parse(raw))
	bk := testkit.Must(p.OpenKey(b.kems(), time.Minute))
	w := *testkit.Must(envelope.DecodeWire(raw))
	for _, target := range []*party{c, a} {
		for idx := range uint8(2) {
			kh := hashOf(target.kemPK)
			acct := target.state.Account()
			named := p.Heads[acct] != (chain.Head{})
			e := envelope.Entry{Account: idx, Device: target.dev[:], KEM: kh[:],
				Sealed: testkit.Must(bk.SealTo(keystore.SealMessageKey, target.kemPK, envelope.Binding(w.Header, acct, target.dev, kh)))}
			for _, replaceDigest := range []bool{false, true} {
				f := w
				f.Entry = envelope.EncodeWire(&e)
				if replaceDigest {
					f.Digests = bytes.Clone(w.Digests)
					d := sha256.Sum256(f.Entry)
					copy(f.Digests[32*int(f.Index):], d[:])
				}
				q := testkit.Must(envelope.Parse(envelope.EncodeWire(&f)))
				if err := q.For(acct, target.dev); err != nil {
					if named && q.ToAccount == acct {
						t.Fatalf("the forgery names the target but For refuses it: %v", err)
					}
					continue // names another account: not delivered to the target
				}
				if !named {
					t.Fatalf("an entry addressed a device of account %s, which the message names no head for", acct)
				}
				if err := q.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
					t.Fatalf("forwarded to a non-recipient (digest replaced: %v): %v", replaceDigest, err)
				}
			}
		}
	}
}

// The message form carries every part once and Split cuts from it exactly
// the envelopes Seal returns; Split refuses a message whose entries name a
// device twice or an account the header has no head for.
func TestMessageFormSplits(t *testing.T) {
	a, a2, b, b2, to := fourDevices(t)
	o := testkit.Must(envelope.SealMessage(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id},
		envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("once"), SentAt: time.Now()}, to))
	ds := testkit.Must(envelope.Split(o.Message))
	if len(ds) != 3 || len(o.Envelopes) != 3 {
		t.Fatalf("%d deliveries, %d envelopes", len(ds), len(o.Envelopes))
	}
	total := 0
	for i, d := range ds {
		if d.Account != to[i].Account || d.Device != to[i].Device || !bytes.Equal(d.Bytes, o.Envelopes[i].Bytes) {
			t.Fatalf("delivery %d differs from Seal's envelope", i)
		}
		total += len(d.Bytes)
	}
	m := testkit.Must(envelope.DecodeMessage(o.Message))
	if len(m.Sig) != 3373 || len(m.Entries) != 3 || len(o.Message) > total/2 {
		t.Fatalf("message form of %d bytes (envelopes %d), signature %d, %d entries", len(o.Message), total, len(m.Sig), len(m.Entries))
	}
	// The message form's envelopes open at their devices.
	for _, p := range []*party{b, b2, a2} {
		var raw []byte
		for _, d := range ds {
			if d.Device == p.dev {
				raw = d.Bytes
			}
		}
		if body, err := open(testkit.Must(envelope.Parse(raw)), p, a); err != nil || string(body) != "once" {
			t.Fatalf("device %s: %q %v", p.dev, body, err)
		}
	}
	for name, edit := range map[string]func(m *envelope.MessageWire){
		"an entry twice": func(m *envelope.MessageWire) { m.Entries = append(m.Entries, m.Entries[0]) },
		"an account index past the heads": func(m *envelope.MessageWire) {
			e := *testkit.Must(envelope.DecodeEntry(m.Entries[0]))
			e.Account = 2
			m.Entries = append([][]byte{envelope.EncodeWire(&e)}, m.Entries[1:]...)
		},
		"a body too large for a device's envelope": func(m *envelope.MessageWire) { m.Body = make([]byte, envelope.MaxEnvelope) },
		"no entries": func(m *envelope.MessageWire) { m.Entries = nil },
		"version 5":  func(m *envelope.MessageWire) { m.Version = 5 },
		"no header":  func(m *envelope.MessageWire) { m.Header = nil },
	} {
		f := *m
		edit(&f)
		if _, err := envelope.Split(envelope.EncodeWire(&f)); !errors.Is(err, envelope.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestSealRefusesBadRecipients(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	from := envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id}
	m := envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("x"), SentAt: time.Now()}
	r := envelope.Eligible(b.state, chain.DeviceID{})[0]
	noHead, stale := r, r
	noHead.Head = chain.Head{}
	stale.Head.Seq++
	stale.Device[0] ^= 1
	for name, to := range map[string][]envelope.Recipient{
		"none":                      nil,
		"one device twice":          {r, r},
		"no chain head":             {noHead},
		"two heads for one account": {r, stale},
		"more than MaxRecipients":   make([]envelope.Recipient, envelope.MaxRecipients+1),
	} {
		if _, err := envelope.Seal(a.session(t), from, m, to); !errors.Is(err, envelope.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// Version 3 envelopes (one signature per message, queued before the
// update to version 4) still open at each of their devices; a changed byte
// is refused, and so is a relay's swap of two devices' entries.
func TestVersion3StillOpens(t *testing.T) {
	a, a2, b, b2, to := fourDevices(t)
	out := testkit.Must(envelope.SealV3(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id},
		envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("queued v3"), SentAt: time.Now()}, to))
	for _, p := range []*party{b, b2, a2} {
		raw := envelopeFor(t, out, p)
		q := testkit.Must(envelope.Parse(raw))
		if q.Version != 3 || q.Recipients != 3 || len(q.Heads) != 2 {
			t.Fatalf("parsed as version %d, %d recipients, %d heads", q.Version, q.Recipients, len(q.Heads))
		}
		if body, err := open(q, p, a); err != nil || string(body) != "queued v3" {
			t.Fatalf("device %s: %q %v", p.dev, body, err)
		}
	}
	raw := envelopeFor(t, out, b)
	flipsRefused(t, raw, b, a)
	w := *testkit.Must(envelope.DecodeWireV3(raw))
	w2 := testkit.Must(envelope.DecodeWireV3(envelopeFor(t, out, b2)))
	w.Recipient, w.Sealed = w2.Recipient, w2.Sealed
	if q, err := envelope.Parse(envelope.EncodeWire(&w)); err == nil {
		if err := q.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
			t.Fatalf("b2's version 3 entry in b's envelope: %v", err)
		}
	}
}

// Version 2 envelopes (one signature each), queued before an update, still
// open; a changed byte is still refused, and so are version 3 fields on a
// version 2 envelope and versions this build does not read, in either
// layout.
func TestVersion2StillOpens(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	out, err := envelope.SealV2(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id},
		envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("queued"), SentAt: time.Now()},
		envelope.Eligible(b.state, chain.DeviceID{}))
	if err != nil || len(out) != 1 {
		t.Fatal(err)
	}
	raw := out[0].Bytes
	p := testkit.Must(envelope.Parse(raw))
	if p.Version != 2 || p.Recipients != 1 || len(p.Heads) != 0 {
		t.Fatalf("parsed as version %d, %d recipients, %d heads", p.Version, p.Recipients, len(p.Heads))
	}
	if body, err := open(p, b, a); err != nil || string(body) != "queued" {
		t.Fatalf("open: %q %v", body, err)
	}
	flipsRefused(t, raw, b, a)
	w := *testkit.Must(envelope.DecodeWireV3(raw))
	w.Digests = make([]byte, 32)
	if _, err := envelope.Parse(envelope.EncodeWire(&w)); !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("version 2 with entry digests: %v", err)
	}
	// In the version 3 layout the version is the header's first value:
	// 0xa7 (map of 7), 0x01, version.
	for _, v := range []byte{1, 4, 5} {
		w := *testkit.Must(envelope.DecodeWireV3(raw))
		w.Header = bytes.Clone(w.Header)
		if w.Header[1] != 0x01 || w.Header[2] != 0x02 {
			t.Fatalf("header starts % x", w.Header[:3])
		}
		w.Header[2] = v
		_, err := envelope.Parse(envelope.EncodeWire(&w))
		if !errors.Is(err, envelope.ErrMalformed) || !strings.Contains(err.Error(), "version "+string('0'+rune(v))) {
			t.Fatalf("version %d: %v", v, err)
		}
	}
	// In the version 4 layout it is key 0, and the header must agree.
	_, _, bb, _, sealed := twoAccounts(t)
	for name, edit := range map[string]func(w *envelope.Wire){
		"version 5":          func(w *envelope.Wire) { w.Version = 5 },
		"version 3 at key 0": func(w *envelope.Wire) { w.Version = 3 },
		"a version 3 header": func(w *envelope.Wire) {
			w.Header = bytes.Clone(w.Header)
			w.Header[2] = 3
		},
	} {
		w := *testkit.Must(envelope.DecodeWire(envelopeFor(t, sealed, bb)))
		edit(&w)
		if _, err := envelope.Parse(envelope.EncodeWire(&w)); !errors.Is(err, envelope.ErrMalformed) || !strings.Contains(err.Error(), "version") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Real envelopes have the annotated layout (golden_test.go): version 4 at
// key 0, a header of 8 keys starting with version 4, the envelope at index
// 0 without key 5, a 1,228-byte entry holding a 1,168-byte sealed key, and
// one 3,373-byte signature; the message form holds each part once.
func TestGoldenRealEnvelope(t *testing.T) {
	_, _, b, b2, sealed := twoAccounts(t)
	for i, raw := range [][]byte{envelopeFor(t, sealed, b), envelopeFor(t, sealed, b2)} {
		w := testkit.Must(envelope.DecodeWire(raw))
		if want := byte(0xa6 + i); raw[0] != want || raw[1] != 0x00 || raw[2] != 0x04 || int(w.Index) != i {
			t.Errorf("envelope %d starts % x with index %d, want %x 00 04", i, raw[:3], w.Index, want)
		}
		if !bytes.HasPrefix(w.Header, []byte{0xa8, 0x01, 0x04, 0x02, 0x01, 0x03, 0x50}) {
			t.Errorf("header starts % x", w.Header[:7])
		}
		e := testkit.Must(envelope.DecodeEntry(w.Entry))
		if len(e.Sealed) != 1168 || len(w.Sig) != 3373 || len(w.Digests) != 3*32 || len(w.Entry) != 1228 {
			t.Errorf("sizes: sealed %d, signature %d, digests %d, entry %d", len(e.Sealed), len(w.Sig), len(w.Digests), len(w.Entry))
		}
	}
}

// flipsRefused checks that raw, sealed by sender to device to, never opens
// with one byte changed (every len/400-th byte).
func flipsRefused(t *testing.T, raw []byte, to, sender *party) {
	t.Helper()
	for i := 0; i < len(raw); i += max(1, len(raw)/400) {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		if q, err := envelope.Parse(bad); err == nil {
			if body, err := open(q, to, sender); err == nil {
				t.Fatalf("byte %d flipped: opened %q", i, body)
			}
		}
	}
}
