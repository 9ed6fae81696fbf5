package envelope_test

import (
	"errors"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
)

// purposeApply applies a draft signed by the caller to st.
func purposeApply(t *testing.T, st *chain.State, d *chain.Draft) *chain.State {
	t.Helper()
	l, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	next, err := chain.Apply(st, l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// purposeAddDevice adds dev (a device with its own keystore) to owner's
// account, approved by owner's device.
func purposeAddDevice(t *testing.T, owner, dev *party) {
	t.Helper()
	var n [chain.NonceSize]byte
	n[0] = dev.dev[0]
	rec := chain.Device{ID: dev.dev, Name: "second", Identity: testkit.Must(dev.id.HybridPublic()), KEM: dev.kemPK, Level: chain.LevelSoftware}
	d := testkit.Must(chain.NewDraft(owner.state, time.Now(), &chain.AddDevice{Device: rec, Nonce: n, PairingHash: chain.PairingHash(n, "123456")}))
	testkit.NoErr(t, d.SignDevice(owner.dev, testkit.Must(owner.id.ChainSigner(true))))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, testkit.Must(dev.id.ChainSigner(true))))
	owner.state = purposeApply(t, owner.state, d)
}

// An envelope from a device that is revoked in the sender's verified
// chain is refused, although the device is in the chain and its key signed.
func TestRevokedSenderRefused(t *testing.T) {
	a, a2, b := newParty(t, 1), newParty(t, 4), newParty(t, 2)
	purposeAddDevice(t, a, a2)
	// a2 sends while it is active: accepted.
	a2.state = a.state
	p := testkit.Must(envelope.Parse(seal(t, a2, b, a2.id, "while active")))
	if err := p.Verify(a.state); err != nil {
		t.Fatalf("an active second device is refused: %v", err)
	}
	d := testkit.Must(chain.NewDraft(a.state, time.Now(), &chain.RevokeDevice{ID: a2.dev, Reason: chain.ReasonLost}))
	testkit.NoErr(t, d.SignDevice(a.dev, testkit.Must(a.id.ChainSigner(true))))
	a.state = purposeApply(t, a.state, d)
	if _, ok := a.state.Device(a2.dev); !ok {
		t.Fatal("the revoked device left the chain: the test would not exercise the active check")
	}
	if err := p.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
		t.Fatalf("an envelope from a revoked device: %v", err)
	}
	if _, err := open(p, b, a); !errors.Is(err, envelope.ErrSender) {
		t.Fatalf("opened an envelope from a revoked device: %v", err)
	}
}

// An envelope from a device retired by replace_device is refused.
func TestRetiredSenderRefused(t *testing.T) {
	a, a3, b := newParty(t, 1), newParty(t, 5), newParty(t, 2)
	p := testkit.Must(envelope.Parse(seal(t, a, b, a.id, "before the replacement")))
	if err := p.Verify(a.state); err != nil {
		t.Fatalf("the active device is refused: %v", err)
	}
	var n [chain.NonceSize]byte
	n[0] = 9
	rec := chain.Device{ID: a3.dev, Name: "new phone", Identity: testkit.Must(a3.id.HybridPublic()), KEM: a3.kemPK, Level: chain.LevelSoftware}
	d := testkit.Must(chain.NewDraft(a.state, time.Now(), &chain.ReplaceDevice{Old: a.dev, Device: rec, Nonce: n, PairingHash: chain.PairingHash(n, "654321")}))
	testkit.NoErr(t, d.SignDevice(a.dev, testkit.Must(a.id.ChainSigner(true))))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, testkit.Must(a3.id.ChainSigner(true))))
	a.state = purposeApply(t, a.state, d)
	if _, ok := a.state.Device(a.dev); !ok || a.state.IsActive(a.dev) {
		t.Fatal("the replaced device should stay in the chain, not active")
	}
	if err := p.Verify(a.state); !errors.Is(err, envelope.ErrSender) {
		t.Fatalf("an envelope from a retired device: %v", err)
	}
}

// sealCall seals a call envelope with session key sk from party from (as
// account acct) to the devices of to.
func sealCall(t *testing.T, sk *keystore.SessionKey, from *party, to *party, callID string) []byte {
	t.Helper()
	out, err := envelope.Seal(sk, envelope.From{Account: from.state.Account(), Device: from.dev, Identity: from.id},
		envelope.Message{Kind: envelope.KindCall, Conversation: to.state.Account(), CallID: callID, SentAt: time.Now()},
		envelope.Eligible(to.state, chain.DeviceID{}))
	if err != nil || len(out) != 1 {
		t.Fatalf("seal call: %v", err)
	}
	return out[0].Bytes
}

// The call fingerprint binds the call id and the parties: a recipient
// that re-seals the call key to a third party — under a new call id, or
// under the same one — cannot make that party see the original call's
// fingerprint. (Before, the fingerprint was of the key alone.)
func TestCallFingerprintBindsCallAndParties(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	sk := a.session(t)
	p := testkit.Must(envelope.Parse(sealCall(t, sk, a, b, "call-1")))
	callerFP := testkit.Must(envelope.Fingerprint(sk, "call-1", a.state.Account(), a.dev, b.state.Account()))
	testkit.NoErr(t, p.Verify(a.state))
	bk := testkit.Must(p.OpenKey(b.kems(), time.Minute))
	if got := testkit.Must(p.Fingerprint(bk)); got != callerFP {
		t.Fatalf("the two ends of an honest call show %s and %s", callerFP, got)
	}
	for _, id := range []string{"call-2", "call-1"} {
		q := testkit.Must(envelope.Parse(sealCall(t, bk, b, c, id)))
		testkit.NoErr(t, q.Verify(b.state))
		ck := testkit.Must(q.OpenKey(c.kems(), time.Minute))
		if got := testkit.Must(q.Fingerprint(ck)); got == callerFP {
			t.Fatalf("re-sealed to a third party as %s, the call key shows the original call's fingerprint %s", id, got)
		}
	}
	// Each bound field changes it.
	for _, fp := range []string{
		testkit.Must(envelope.Fingerprint(sk, "call-2", a.state.Account(), a.dev, b.state.Account())),
		testkit.Must(envelope.Fingerprint(sk, "call-1", c.state.Account(), a.dev, b.state.Account())),
		testkit.Must(envelope.Fingerprint(sk, "call-1", a.state.Account(), c.dev, b.state.Account())),
		testkit.Must(envelope.Fingerprint(sk, "call-1", a.state.Account(), a.dev, c.state.Account())),
	} {
		if fp == callerFP {
			t.Fatal("a fingerprint ignores one of the call id, caller account, caller device, called account")
		}
	}
	if _, err := testkit.Must(envelope.Parse(seal(t, a, b, a.id, "m"))).Fingerprint(bk); !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("a message has a call fingerprint: %v", err)
	}
}
