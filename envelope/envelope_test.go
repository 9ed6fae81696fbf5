package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// party is a device with a keystore and a one-device account.
type party struct {
	ks    *keystore.Store
	id    *keystore.IdentityKey
	kem   *keystore.KEMKey
	kemPK []byte
	dev   chain.DeviceID
	state *chain.State
}

func newParty(t *testing.T, seed byte) *party {
	t.Helper()
	b, _ := testkit.SoftBackend("soft")
	ks := testkit.Must(keystore.Init(context.Background(), filepath.Join(t.TempDir(), "h"), b, []byte("pw"),
		keystore.InitOptions{Options: keystore.Options{Backend: testkit.SoftBackend}}))
	t.Cleanup(func() { ks.Close() })
	ks.SetAppAuthorized(true)
	ks.SetAssociation(policy.Associated, nil)
	idInfo := testkit.Must(ks.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true}))
	kemInfo := testkit.Must(ks.Generate(keystore.ClassKEM, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true}))
	p := &party{ks: ks, id: testkit.Must(ks.Identity(idInfo.ID)), kem: testkit.Must(ks.KEM(kemInfo.ID)), kemPK: kemInfo.Public, dev: chain.DeviceID(ks.DeviceID())}
	rk := testkit.Must(hybrid.NewPrivateKey(bytes.Repeat([]byte{seed}, hybrid.SeedSize)))
	d := testkit.Must(chain.NewGenesis(time.Now(), &chain.Genesis{Device: chain.Device{ID: p.dev, Name: "d", Identity: testkit.Must(p.id.HybridPublic()),
		KEM: kemInfo.Public, Level: chain.LevelSoftware}, Recovery: rk.Public(), Policy: chain.DefaultPolicy()}))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, testkit.Must(p.id.ChainSigner(true))))
	d.Sign(chain.RoleNewRecovery, rk)
	p.state = testkit.Must(chain.Apply(nil, testkit.Must(d.Link()), time.Now()))
	return p
}

func (p *party) session(t *testing.T) *keystore.SessionKey {
	info := testkit.Must(p.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true}))
	return testkit.Must(p.ks.Session(info.ID))
}

func (p *party) kems() map[[32]byte]*keystore.KEMKey {
	return map[[32]byte]*keystore.KEMKey{hashOf(p.kemPK): p.kem}
}

func seal(t *testing.T, from, to *party, fromID *keystore.IdentityKey, body string) []byte {
	t.Helper()
	out, err := envelope.Seal(from.session(t), envelope.From{Account: from.state.Account(), Device: from.dev, Identity: fromID},
		envelope.Message{Kind: envelope.KindMessage, Conversation: to.state.Account(), Body: []byte(body), SentAt: time.Now()},
		envelope.Eligible(to.state, chain.DeviceID{}))
	if err != nil || len(out) != 1 {
		t.Fatalf("seal: %v (%d envelopes)", err, len(out))
	}
	return out[0].Bytes
}

// open runs the receiving side's checks in order.
func open(p *envelope.Parsed, to, sender *party) ([]byte, error) {
	if err := p.For(to.state.Account(), to.dev); err != nil {
		return nil, err
	}
	if err := p.Verify(sender.state); err != nil {
		return nil, err
	}
	sk, err := p.OpenKey(to.kems(), time.Minute)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	return p.OpenBody(sk)
}

func TestRoundTrip(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	raw := seal(t, a, b, a.id, "hello")
	p, err := envelope.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.FromAccount != a.state.Account() || p.ToDevice != b.dev || p.Kind != envelope.KindMessage {
		t.Fatalf("parsed %+v", p)
	}
	body, err := open(p, b, a)
	if err != nil || string(body) != "hello" {
		t.Fatalf("open: %q %v", body, err)
	}
}

// A changed byte anywhere in an envelope is refused; it never opens to
// other plaintext.
func TestTamperedEnvelope(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	flipsRefused(t, seal(t, a, b, a.id, "hello"), b, a)
}

func TestWrongRecipientAndKey(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	p := testkit.Must(envelope.Parse(seal(t, a, b, a.id, "for b")))
	if err := p.For(c.state.Account(), c.dev); !errors.Is(err, envelope.ErrNotForMe) {
		t.Fatalf("another device: %v", err)
	}
	// c's KEM key cannot open what was sealed to b's.
	if _, err := p.OpenKey(c.kems(), time.Minute); !errors.Is(err, envelope.ErrNoKey) {
		t.Fatalf("another device's KEM key: %v", err)
	}
}

// The sender must be active in the sender's verified chain and its
// identity key must have signed.
func TestSenderVerified(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	p := testkit.Must(envelope.Parse(seal(t, a, b, a.id, "x")))
	if err := p.Verify(c.state); !errors.Is(err, envelope.ErrSender) {
		t.Fatalf("verified against another account's chain: %v", err)
	}
	// An envelope claiming to come from a's device but signed by c's key.
	forged := testkit.Must(envelope.Parse(seal(t, a, b, c.id, "forged")))
	if err := forged.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
		t.Fatalf("signed by a key that is not the device's: %v", err)
	}
}

func TestCallIDRules(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	for _, m := range []envelope.Message{
		{Kind: envelope.KindCall, Conversation: b.state.Account()},                      // a call without an id
		{Kind: envelope.KindMessage, CallID: "call-1", Conversation: b.state.Account()}, // an id on a message
		{Kind: envelope.KindCall, CallID: "bad id!", Conversation: b.state.Account()},   // outside [A-Za-z0-9_-]
		{Kind: envelope.KindMessage, Body: make([]byte, envelope.MaxBody+1)},            // too large
	} {
		_, err := envelope.Seal(a.session(t), envelope.From{Account: a.state.Account(), Device: a.dev, Identity: a.id}, m,
			envelope.Eligible(b.state, chain.DeviceID{}))
		if !errors.Is(err, envelope.ErrMalformed) {
			t.Errorf("%+v: err = %v, want ErrMalformed", m.Kind, err)
		}
	}
}
