package envelope_test

import (
	"bytes"
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
	a, a2, b, b2 = newParty(t, 1), newParty(t, 4), newParty(t, 2), newParty(t, 5)
	purposeAddDevice(t, a, a2)
	a2.state = a.state
	purposeAddDevice(t, b, b2)
	b2.state = b.state
	to := append(envelope.Eligible(b.state, chain.DeviceID{}), envelope.Eligible(a.state, a.dev)...)
	var err error
	sealed, err = envelope.Seal(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id},
		envelope.Message{Kind: envelope.KindMessage, Conversation: b.state.Account(), Body: []byte("to all"), SentAt: time.Now()}, to)
	if err != nil || len(sealed) != 3 {
		t.Fatalf("seal: %v (%d envelopes)", err, len(sealed))
	}
	return a, a2, b, b2, sealed
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
		if p.Version != 3 || p.Recipients != 3 {
			t.Fatalf("version %d, %d recipients; want 3 and 3", p.Version, p.Recipients)
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
// this index, this entry at another index, an entry dropped, added or
// changed in the digest list — is refused at Verify, before any key is
// installed.
func TestRelayRewritesEntries(t *testing.T) {
	a, a2, b, b2, sealed := twoAccounts(t)
	wb := testkit.Must(envelope.DecodeWire(envelopeFor(t, sealed, b)))
	wb2 := testkit.Must(envelope.DecodeWire(envelopeFor(t, sealed, b2)))
	cases := map[string]func(w *envelope.Wire){
		"b2's entry in b's envelope":     func(w *envelope.Wire) { w.Recipient, w.Sealed = wb2.Recipient, wb2.Sealed },
		"b2's sealed key under b's name": func(w *envelope.Wire) { w.Sealed = wb2.Sealed },
		"b's entry at b2's index":        func(w *envelope.Wire) { w.Index = wb2.Index },
		"last digest dropped":            func(w *envelope.Wire) { w.Digests = w.Digests[:len(w.Digests)-32] },
		"a digest added":                 func(w *envelope.Wire) { w.Digests = append(bytes.Clone(w.Digests), make([]byte, 32)...) },
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
				return // refused as malformed: fine
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
	_ = a2
}

// A recipient knows the message key. It cannot forward the message to a
// device that was not a recipient under the sender's signature: the new
// entry is not among the signed digests, and adding it changes them. A
// device of an account the message names no head for (c) is refused at
// Parse; one of a named account (the sender's own device a) at Verify.
func TestRecipientCannotForwardUnderSendersSignature(t *testing.T) {
	a, _, b, _, sealed := twoAccounts(t)
	c := newParty(t, 3)
	raw := envelopeFor(t, sealed, b)
	bk := testkit.Must(testkit.Must(envelope.Parse(raw)).OpenKey(b.kems(), time.Minute))
	for _, target := range []*party{c, a} {
		// target's recipient part, as any sender would write it.
		var to []envelope.Recipient
		for _, r := range envelope.Eligible(target.state, chain.DeviceID{}) {
			if r.Device == target.dev {
				to = append(to, r)
			}
		}
		out := testkit.Must(envelope.Seal(b.session(t), envelope.From{Account: b.state.Account(), Device: b.dev, Identity: b.id},
			envelope.Message{Kind: envelope.KindMessage, Conversation: target.state.Account(), SentAt: time.Now()}, to))
		rec := testkit.Must(envelope.DecodeWire(out[0].Bytes)).Recipient
		w := *testkit.Must(envelope.DecodeWire(raw))
		w.Recipient = rec
		w.Sealed = testkit.Must(bk.SealTo(keystore.SealMessageKey, target.kemPK, append(bytes.Clone(w.Header), rec...)))
		for _, replaceDigest := range []bool{false, true} {
			f := w
			if replaceDigest {
				f.Digests = bytes.Clone(w.Digests)
				d := envelope.EntryDigest(f.Recipient, f.Sealed)
				copy(f.Digests[32*int(f.Index):], d[:])
			}
			q, err := envelope.Parse(envelope.EncodeWire(&f))
			if target == c {
				if !errors.Is(err, envelope.ErrMalformed) {
					t.Fatalf("forwarded to a device of an account the message does not name: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := q.For(target.state.Account(), target.dev); err != nil {
				t.Fatal(err) // the forgery is addressed to the target
			}
			if err := q.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
				t.Fatalf("forwarded to a non-recipient (digest replaced: %v): %v", replaceDigest, err)
			}
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

// Version 2 envelopes (one signature each), queued before an update, still
// open; a changed byte is still refused, and so are version 3 fields on a
// version 2 envelope and versions this build does not read.
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
	for i := 0; i < len(raw); i += max(1, len(raw)/400) {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		if q, err := envelope.Parse(bad); err == nil {
			if body, err := open(q, b, a); err == nil {
				t.Fatalf("byte %d flipped: opened %q", i, body)
			}
		}
	}
	w := *testkit.Must(envelope.DecodeWire(raw))
	w.Digests = make([]byte, 32)
	if _, err := envelope.Parse(envelope.EncodeWire(&w)); !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("version 2 with entry digests: %v", err)
	}
	// The version is the header's first value: 0xa7 (map of 7), 0x01, version.
	for _, v := range []byte{1, 4} {
		w := *testkit.Must(envelope.DecodeWire(raw))
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
}

// Real envelopes have the annotated layout (golden_test.go): a message
// header of 8 keys starting with version 3, the envelope at index 0
// without key 6, a 1,168-byte sealed key and one 3,373-byte signature.
func TestGoldenRealEnvelope(t *testing.T) {
	_, _, b, b2, sealed := twoAccounts(t)
	for i, raw := range [][]byte{envelopeFor(t, sealed, b), envelopeFor(t, sealed, b2)} {
		w := testkit.Must(envelope.DecodeWire(raw))
		if want := byte(0xa6 + i); raw[0] != want || int(w.Index) != i {
			t.Errorf("envelope %d starts %x with index %d, want %x", i, raw[0], w.Index, want)
		}
		if !bytes.HasPrefix(w.Header, []byte{0xa8, 0x01, 0x03, 0x02, 0x01, 0x03, 0x50}) {
			t.Errorf("header starts % x", w.Header[:7])
		}
		if len(w.Sealed) != 1168 || len(w.Sig) != 3373 || len(w.Digests) != 3*32 || len(w.Recipient) != 89 {
			t.Errorf("sizes: sealed %d, signature %d, digests %d, recipient %d", len(w.Sealed), len(w.Sig), len(w.Digests), len(w.Recipient))
		}
	}
}
